namespace Hil.Model.Scenarios;

/// <summary>A scenario file is wrong: names the file, the line and the field, for a one-line message.</summary>
public sealed class ScenarioException(string source, long line, string field, string problem)
    : Exception($"{source}:{line}: {field}: {problem}")
{
    public string File { get; } = source;
    public long Line { get; } = line;
    public string Field { get; } = field;
    public string Problem { get; } = problem;
}
