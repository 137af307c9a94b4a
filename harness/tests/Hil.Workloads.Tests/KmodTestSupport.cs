using Serilog;

namespace Hil.Workloads.Tests;

/// <summary>Paths and logging shared by the Kmod*, Holder* and Xtest* tests.</summary>
public static class KmodTestSupport
{
    public static ILogger Log { get; } = new LoggerConfiguration().MinimumLevel.Information()
        .WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}").CreateLogger();

    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "HilHarness.sln"))) d = d.Parent;
            return d?.FullName ?? throw new InvalidOperationException("HilHarness.sln not found above the test folder");
        }
    }

    public static string XtestFixture(string name) => File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "xtest", name));

    public static string TempDir(string name)
    {
        var d = Path.Combine(Path.GetTempPath(), $"hil-wl-{name}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(d);
        return d;
    }
}
