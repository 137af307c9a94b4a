using System.Text;
using System.Text.RegularExpressions;
using Hil.Boards.Failures;

namespace Hil.Suites.Common;

/// <summary>
/// How a failed result carries its class: the message starts with <c>[infrastructure]</c>,
/// <c>[product]</c> or <c>[test]</c>, so JUnit/NUnit XML, the console and <c>hil run</c>'s table
/// all show who is to blame without any side channel.
/// </summary>
public static partial class FailureText
{
    public static string Tag(FailureClass c) => c switch
    {
        FailureClass.Infrastructure => "infrastructure",
        FailureClass.Product => "product",
        _ => "test",
    };

    /// <summary>"[product] message", then the evidence lines (console lines, facts), indented.</summary>
    public static string Format(Failure failure, int maxEvidence = 20)
    {
        var sb = new StringBuilder($"[{Tag(failure.Class)}] {failure.Message}");
        var evidence = failure.Evidence.Where(l => !string.IsNullOrWhiteSpace(l)).TakeLast(maxEvidence).ToList();
        if (evidence.Count > 0)
        {
            sb.Append("\nevidence:");
            foreach (var line in evidence) sb.Append("\n  ").Append(line.TrimEnd());
        }
        return sb.ToString();
    }

    /// <summary>The class a failure message starts with (null for a message without one).</summary>
    public static FailureClass? ClassOf(string? message)
    {
        if (message is null) return null;
        var m = Leading().Match(message);
        if (!m.Success) return null;
        return m.Groups[1].Value switch
        {
            "infrastructure" => FailureClass.Infrastructure,
            "product" => FailureClass.Product,
            _ => FailureClass.Test,
        };
    }

    /// <summary>The message without its leading class tag (as written by <see cref="Format"/>).</summary>
    public static string StripTag(string message)
    {
        var m = Leading().Match(message);
        return m.Success ? message[m.Length..].TrimStart() : message;
    }

    // The class may follow a runner's prefix such as "OneTimeSetUp: ".
    [GeneratedRegex(@"^\s*(?:[A-Za-z]+: )?\[(infrastructure|product|test)\]")]
    private static partial Regex Leading();
}
