using Hil.Boards.Failures;
using Hil.Kernel;
using Hil.Workloads.Kmod;
using Hil.Workloads.Tracing;
using Hil.Workloads.Tracing.Planning;
using Serilog;

namespace Hil.Suites.Common;

/// <summary>
/// Measures the facts suites judge a board by, right after each boot: the driver's call-queue
/// policy from the code of the optee.ko the board has loaded, and OP-TEE's thread count asked of
/// the firmware by hil_cq (loaded here, kept for the suites). After loading the module it takes
/// one board round trip: the tracer's kernel facts, the firmware file and the driver's own count
/// come back in one command's output.
/// </summary>
public static class FactsReader
{
    /// <summary>Where the QEMU image's /init leaves the thread count its optee_cq_init kprobe saw ("unavailable" on 6.1).</summary>
    public const string ThreadCountRecord = "/run/hil/optee_thread_count";

    private const string Marker = "@@hil-facts ";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Measures the facts on <paramref name="live"/> and sets them beside <paramref name="expected"/> (usually its board file's).</summary>
    public static async Task<BoardFacts> ReadAsync(LiveBoard live, SuiteFacts expected, ILogger log, CancellationToken ct)
    {
        var policy = new Fact { Name = "kernel policy", Expected = expected.KernelPolicy, ExpectedFrom = expected.PolicyFrom };
        var threads = new Fact
        {
            Name = "OP-TEE thread count", Expected = expected.OpteeThreads?.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ExpectedFrom = expected.ThreadsFrom,
        };

        string? moduleError = null;
        var moduleClass = FailureClass.Test;
        try
        {
            await SessionModule.GetAsync(live, log, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (Unmeasurable(ex) && !ct.IsCancellationRequested && live.LostReason is null)
        {
            // Not fatal for the session: the facts say why the count is missing and the suites fail on it.
            (moduleError, moduleClass) = ($"hil_cq could not be loaded: {ex.Message}", ClassOf(ex));
        }

        var output = await RunAsync(live, Script(moduleError is null), ct).ConfigureAwait(false);
        var sections = Sections(output);
        var release = (string?)null;
        try
        {
            var kernel = KernelFacts.Parse(sections.GetValueOrDefault("kernel", ""));
            release = kernel.Release;
            var tracing = live.Qemu is { } q ? CallQueueTracing.ForQemu(q, log) : new CallQueueTracing(live.Board, log);
            var (module, code) = await tracing.DriverCodeAsync(kernel, Path.Combine(live.LogDirectory, "facts"), ct).ConfigureAwait(false);
            var driver = DriverPolicy.From(code);
            policy = driver.IsKnown
                ? policy with { Measured = driver.Name, MeasuredFrom = $"driver: optee.ko {module.Origin}, build ID {module.BuildId ?? "?"} (the loaded module's {kernel.OpteeBuildId ?? "?"}): {driver.Evidence}" }
                : policy with { NotMeasured = $"unknown OP-TEE driver in {module.Origin}: {driver.Evidence}", NotMeasuredClass = FailureClass.Product };
        }
        catch (Exception ex) when (Unmeasurable(ex) && !ct.IsCancellationRequested)
        {
            policy = policy with { NotMeasured = ex.Message, NotMeasuredClass = ClassOf(ex) };
        }

        if (moduleError is not null)
            threads = threads with { NotMeasured = moduleError, NotMeasuredClass = moduleClass };
        else
        {
            try
            {
                var firmware = KmodOutput.Firmware(sections.GetValueOrDefault("firmware", ""));
                threads = firmware.ThreadCount is { } n
                    ? threads with { Measured = n.ToString(System.Globalization.CultureInfo.InvariantCulture), MeasuredFrom = $"firmware: OPTEE_SMC_GET_THREAD_COUNT asked by hil_cq over {firmware.Conduit}" }
                    : threads with { NotMeasured = $"the firmware gave no thread count: {firmware.Reason}", NotMeasuredClass = FailureClass.Product };
            }
            catch (FormatException ex)
            {
                threads = threads with { NotMeasured = $"{KmodDriver.DebugfsDirectory}/firmware: {ex.Message}", NotMeasuredClass = FailureClass.Product };
            }
        }

        return new BoardFacts
        {
            Board = live.Target.Name,
            BoardFile = live.Target.BoardFile,
            Policy = policy,
            Threads = threads,
            DriverThreadsRecord = sections.GetValueOrDefault("record", "absent").Trim(),
            KernelRelease = release,
            OpteeVersion = live.Qemu?.Image.OpteeVersion,
            Source = live.Qemu is { } qs ? $"qemu image {qs.Image.Directory}" : "real board",
            Session = live.Session,
            ReadAtUtc = DateTimeOffset.UtcNow,
        };
    }

    /// <summary>
    /// What can keep a fact from being measured without the session being lost: the harness's own
    /// failures (build, kit, analysis) and host tools (objdump, make) that failed.
    /// </summary>
    private static bool Unmeasurable(Exception ex) =>
        ex is HilException or ExternalToolException or ProvisioningException or IOException or FormatException;

    private static FailureClass ClassOf(Exception ex) => ex is HilException h ? h.Class : FailureClass.Test;

    /// <summary>Every read in one command, each section after a marker line.</summary>
    public static string Script(bool moduleLoaded) =>
        $"echo '{Marker}kernel'; {{ {KernelFacts.Command}; }}; " +
        $"echo '{Marker}firmware'; {(moduleLoaded ? $"cat {KmodDriver.DebugfsDirectory}/firmware 2>&1" : "true")}; " +
        $"echo '{Marker}record'; cat {ThreadCountRecord} 2>/dev/null || echo absent";

    public static IReadOnlyDictionary<string, string> Sections(string output)
    {
        var sections = new Dictionary<string, string>(StringComparer.Ordinal);
        string? current = null;
        var text = new System.Text.StringBuilder();
        foreach (var line in output.Split('\n'))
        {
            if (line.StartsWith(Marker, StringComparison.Ordinal))
            {
                if (current is not null) sections[current] = text.ToString();
                current = line[Marker.Length..].Trim();
                text.Clear();
            }
            else if (current is not null) text.Append(line.TrimEnd('\r')).Append('\n');
        }
        if (current is not null) sections[current] = text.ToString();
        return sections;
    }

    /// <summary>Over SSH when the board has it (hil_cq needs it anyway), else over the console shell.</summary>
    private static async Task<string> RunAsync(LiveBoard live, string command, CancellationToken ct)
    {
        if (live.Board.HasSsh)
            return (await live.Board.Ssh.RunCheckedAsync(command, CommandTimeout, ct).ConfigureAwait(false)).Stdout;
        return (await live.Board.Shell.RunCheckedAsync(command, CommandTimeout, ct).ConfigureAwait(false)).Output;
    }
}
