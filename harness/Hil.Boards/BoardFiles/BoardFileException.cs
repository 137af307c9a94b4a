namespace Hil.Boards.BoardFiles;

/// <summary>One mistake in a board file, located by file, line, column and field path.</summary>
public sealed record BoardFileError(string File, int Line, int Column, string Field, string Message)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Field}: {Message}";
}

/// <summary>A board file is wrong. The message lists every error found, one per line, never a stack trace.</summary>
public sealed class BoardFileException(IReadOnlyList<BoardFileError> errors)
    : Failures.TestErrorException(string.Join(Environment.NewLine, errors.Select(e => e.ToString())))
{
    public IReadOnlyList<BoardFileError> Errors { get; } = errors;
}
