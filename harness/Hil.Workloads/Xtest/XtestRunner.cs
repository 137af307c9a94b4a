using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Boards.Ssh;
using Serilog;

namespace Hil.Workloads.Xtest;

/// <summary>Which xtest cases to run and how.</summary>
public sealed partial record XtestOptions
{
    /// <summary>
    /// Suites joined with '+' for -t. Debian's OP-TEE ships no PKCS#11 TA, so the default is
    /// "regression" only: pkcs11_* cases cannot pass there.
    /// </summary>
    public IReadOnlyList<string> Suites { get; init; } = ["regression"];
    /// <summary>Cases to run ("1013" or "regression_1013"); xtest matches them as substrings. Empty = every case of the suites.</summary>
    public IReadOnlyList<string> Cases { get; init; } = [];
    /// <summary>Cases to leave out (-x), also substring matches.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];
    /// <summary>xtest -l: 0 runs the standard cases.</summary>
    public int Level { get; init; }
    /// <summary>The board's `timeout` ends xtest after this; the whole regression suite takes ~6.5 min under QEMU.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(15);
    /// <summary>Prefix every line with the board's uptime, for per-case durations (a shell loop per line on the board).</summary>
    public bool Timestamps { get; init; } = true;

    [GeneratedRegex("^[a-z0-9]+$")]
    private static partial Regex SuiteName();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.]*$")]
    private static partial Regex CaseName();

    /// <summary>xtest's argument vector; throws ArgumentException for names xtest would misread.</summary>
    public IReadOnlyList<string> Arguments()
    {
        if (Suites.Count == 0) throw new ArgumentException("at least one suite", nameof(Suites));
        foreach (var s in Suites)
            if (!SuiteName().IsMatch(s)) throw new ArgumentException($"suite '{s}' is not a suite name (regression, benchmark, pkcs11)", nameof(Suites));
        foreach (var c in Cases.Concat(Exclude))
            if (!CaseName().IsMatch(c)) throw new ArgumentException($"test id '{c}' is not a case number or name (e.g. 1013 or regression_1013)", nameof(Cases));
        if (Level is < 0 or > 15) throw new ArgumentOutOfRangeException(nameof(Level), Level, "xtest levels are 0-15");
        if (Timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "must be positive");
        return ["-l", Level.ToString(CultureInfo.InvariantCulture), "-t", string.Join('+', Suites),
            .. Exclude.SelectMany(x => new[] { "-x", x }), .. Cases];
    }
}

/// <summary>One xtest run: what ran, how it ended, what it printed and its structured report.</summary>
public sealed record XtestRun(string Command, int ExitCode, bool TimedOut, TimeSpan Duration, string Output, XtestReport Report)
{
    /// <summary>xtest ended on its own with status 0 and every case and subtest passed.</summary>
    public bool Passed => ExitCode == 0 && !TimedOut && Report.AllPassed;
}

/// <summary>Runs xtest on a board over SSH (2>&amp;1, so library errors land next to the case that caused them).</summary>
public sealed partial class XtestRunner(SshLink ssh, ILogger log)
{
    private const string ExitMarker = "hil-xtest-exit=";

    [GeneratedRegex(@"(?:^|\|)hil-xtest-exit=(?<rc>\d+)\s*$", RegexOptions.Multiline)]
    private static partial Regex ExitLine();

    /// <summary>The board command line (quoted arguments, `timeout` around xtest, optional per-line timestamps).</summary>
    public static string CommandLine(XtestOptions options)
    {
        var xtest = ShellQuote.Join(["timeout", Math.Ceiling(options.Timeout.TotalSeconds).ToString(CultureInfo.InvariantCulture), "xtest", .. options.Arguments()]);
        var run = $"{{ {xtest}; echo \"{ExitMarker}$?\"; }} 2>&1";
        // Builtins only (read, printf): no process per line. xtest flushes per line, so the stamps are live.
        return options.Timestamps
            ? run + " | while IFS= read -r l; do read u _ < /proc/uptime; printf '@%s|%s\\n' \"$u\" \"$l\"; done"
            : run;
    }

    public async Task<XtestRun> RunAsync(XtestOptions options, CancellationToken ct = default)
    {
        var command = CommandLine(options);
        log.Information("xtest: {Args} on {Address}", string.Join(' ', options.Arguments()), ssh.Address);
        var clock = Stopwatch.StartNew();
        var r = await ssh.RunAsync(command, options.Timeout + TimeSpan.FromMinutes(1), ct).ConfigureAwait(false);
        var output = r.Stdout;
        var m = ExitLine().Match(output);
        if (!m.Success)
            throw new InfrastructureException($"xtest on {ssh.Address} ended without its exit marker (ssh exit {r.ExitStatus}): {r.Stderr.Trim()}");
        var exit = int.Parse(m.Groups["rc"].Value, CultureInfo.InvariantCulture);
        var report = XtestOutputParser.Parse(output);
        // busybox timeout sends SIGTERM: the shell reports 143; a run cut short also lacks the closing line.
        var timedOut = exit == 143 || exit == 124 || (!report.Completed && clock.Elapsed >= options.Timeout);
        var run = new XtestRun(string.Join(' ', options.Arguments()), exit, timedOut, clock.Elapsed, output, report);
        log.Information("xtest: exit {Exit} after {Seconds:0.0} s: {Cases} cases ({Failed} failed), xtest's summary {Summary}",
            exit, clock.Elapsed.TotalSeconds, report.Cases.Count, report.Cases.Count(c => c.Outcome != XtestOutcome.Passed), report.Summary);
        return run;
    }
}
