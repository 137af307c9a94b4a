using System.Text;

namespace Hil.Boards.Shell;

/// <summary>
/// POSIX shell quoting for every argument the harness builds into a command line (console shell,
/// SSH exec, power commands): single quotes, with embedded single quotes written as '\''.
/// Nothing inside single quotes is special to sh, so no argument can inject a command.
/// </summary>
public static class ShellQuote
{
    public static string Quote(string argument)
    {
        if (argument.Length > 0 && argument.All(IsSafe)) return argument;
        var sb = new StringBuilder(argument.Length + 8).Append('\'');
        foreach (var c in argument)
        {
            if (c == '\'') sb.Append(@"'\''");
            else sb.Append(c);
        }
        return sb.Append('\'').ToString();
    }

    /// <summary>Quotes each argument and joins them with spaces: a command line for sh -c.</summary>
    public static string Join(IEnumerable<string> argv) => string.Join(' ', argv.Select(Quote));

    public static string Join(params string[] argv) => Join((IEnumerable<string>)argv);

    // Characters that never need quoting; everything else is quoted to be safe. Not '=' (a first
    // word "A=b" would be an assignment) and not '~' (tilde expansion).
    private static bool IsSafe(char c) => c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-' or '_' or '.' or '/' or ',' or ':' or '+' or '@' or '%';
}
