using Hil.Workloads.Tracing.Module;
using Hil.Workloads.Tracing.Planning;
using Serilog;

namespace Hil.Workloads.Tests;

/// <summary>Fixtures and environment of the tracing tests (Trac*).</summary>
public static class TracingTestSupport
{
    public const string Kernel612 = "6.12.118+deb13-arm64";
    public const string Kernel61 = "6.1.0-56-arm64";

    public static ILogger Log => KmodTestSupport.Log;

    public static string Fixture(string name) => Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "tracing", name);

    public static string ReadFixture(string name) => File.ReadAllText(Fixture(name));

    /// <summary>The optee.ko disassembly of a board kernel (objdump -dr, the call-queue functions and neighbours).</summary>
    public static ObjdumpListing Listing(string kernel) =>
        ObjdumpListing.Parse(ReadFixture($"optee-{kernel}.objdump.txt"), $"optee-{kernel}.objdump.txt");

    /// <summary>Facts as the boards reported them (facts-*.txt: the tracer's own facts command), BTF arguments on or off.</summary>
    public static KernelFacts Facts(string kernel, bool btfArgs) =>
        KernelFacts.Parse(ReadFixture(kernel == Kernel612 ? "facts-6.12.txt" : "facts-6.1.txt")) with { BtfArgs = btfArgs };

    public static string BoardFile(string board) => Path.Combine(KmodTestSupport.RepoRoot, "boards", board + ".yaml");

    public static string TempDir(string name) => KmodTestSupport.TempDir("trac-" + name);
}
