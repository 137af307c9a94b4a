using Hil.Workloads.Tracing.Module;
using Hil.Workloads.Tracing.Planning;
using Serilog;

namespace Hil.Workloads.Tests;

/// <summary>Fixtures and environment of the tracing tests (Trac*).</summary>
public static class TracingTestSupport
{
    public const string Kernel612 = "6.12.118+deb13-arm64";
    public const string Kernel61 = "6.1.0-56-arm64";

    public static ILogger Log { get; } = new LoggerConfiguration().MinimumLevel.Information()
        .WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}").CreateLogger();

    public static string Fixture(string name) => Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "tracing", name);

    public static string ReadFixture(string name) => File.ReadAllText(Fixture(name));

    /// <summary>The optee.ko disassembly of a board kernel (objdump -dr, the call-queue functions and neighbours).</summary>
    public static ObjdumpListing Listing(string kernel) =>
        ObjdumpListing.Parse(ReadFixture($"optee-{kernel}.objdump.txt"), $"optee-{kernel}.objdump.txt");

    /// <summary>Facts as the boards report them (kallsyms lists every non-inlined optee_cq_* function).</summary>
    public static KernelFacts Facts(string kernel, bool btfArgs) => new()
    {
        Release = kernel,
        OpteeFunctions = kernel == Kernel612
            ? new HashSet<string> { "optee_cq_wait_init", "optee_cq_wait_for_completion", "optee_cq_wait_final", "optee_cq_complete_one",
                "optee_cq_init", "optee_system_session", "optee_close_session_helper", "optee_close_session" }
            : new HashSet<string> { "optee_cq_wait_init", "optee_cq_wait_for_completion", "optee_cq_wait_final", "optee_close_session_helper", "optee_close_session" },
        OpteeBtf = true,
        BtfArgs = btfArgs,
        Tracepoints = new HashSet<string> { KernelFacts.InvokeBegin, KernelFacts.InvokeEnd },
    };

    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "HilHarness.sln"))) d = d.Parent;
            return d?.FullName ?? throw new InvalidOperationException("HilHarness.sln not found above the test folder");
        }
    }

    public static string BoardFile(string board) => Path.Combine(RepoRoot, "boards", board + ".yaml");

    public static string TempDir(string name)
    {
        var d = Path.Combine(Path.GetTempPath(), $"hil-trac-{name}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(d);
        return d;
    }
}
