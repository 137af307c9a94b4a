using System.CommandLine;

namespace Hil.Cli;

/// <summary>Runs the parsed command and turns a user's mistake into one clear line, never a stack trace.</summary>
public static class CliRunner
{
    /// <summary>Exit code for bad input (file, argument): distinct from 1 = "a finding / a failed test".</summary>
    public const int UsageError = 2;

    /// <summary>Exit code for a bug in HilHarness itself.</summary>
    public const int InternalError = 3;

    public static int Run(RootCommand root, string[] args)
    {
        try
        {
            // Our own handler below decides what a user's mistake looks like; System.CommandLine's
            // default would print a stack trace.
            var parsed = root.Parse(args);
            // A mistake on the command line is bad input like any other: one line each, exit 2.
            if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
            {
                foreach (var error in parsed.Errors) Console.Error.WriteLine($"hil: {error.Message}");
                Console.Error.WriteLine("hil: see 'hil --help' (or 'hil <command> --help')");
                return UsageError;
            }
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception ex) when (UserErrors.Describe(ex) is { } message)
        {
            Console.Error.WriteLine($"hil: {message}");
            return UsageError;
        }
        catch (Exception ex) when (Unwrap(ex) is Hil.Boards.Failures.HilException h)
        {
            // A board that does not boot, a lost link, a product failure: the board layer's message
            // names the board, the stage and the cause; it is a verdict, not a bug of ours.
            Console.Error.WriteLine($"hil: [{Tag(h.Class)}] {h.Message.Split('\n')[0]}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("hil: cancelled");
            return 130;
        }
        catch (Exception ex)
        {
            // Not the user's mistake: a bug of ours, so the whole story is worth printing.
            Console.Error.WriteLine($"hil: internal error (please report): {ex}");
            return InternalError;
        }
    }

    private static Exception Unwrap(Exception ex) => ex is AggregateException { InnerExceptions.Count: 1 } agg ? agg.InnerExceptions[0] : ex;

    private static string Tag(Hil.Boards.Failures.FailureClass c) => c switch
    {
        Hil.Boards.Failures.FailureClass.Infrastructure => "infrastructure",
        Hil.Boards.Failures.FailureClass.Product => "product",
        _ => "test",
    };
}

/// <summary>
/// The exception types that mean "the user's input is wrong" (each library defines its own, since
/// the model depends on nothing of ours). Add a type here when a library adds one.
/// </summary>
public static class UserErrors
{
    private static readonly List<Func<Exception, string?>> Describers = [];

    public static void Register<T>(Func<T, string> describe) where T : Exception =>
        Describers.Add(ex => ex is T t ? describe(t) : null);

    public static string? Describe(Exception ex)
    {
        var inner = ex is AggregateException { InnerExceptions.Count: 1 } agg ? agg.InnerExceptions[0] : ex;
        foreach (var d in Describers)
            if (d(inner) is { } s) return s;
        return inner is FileNotFoundException or DirectoryNotFoundException ? inner.Message : null;
    }
}
