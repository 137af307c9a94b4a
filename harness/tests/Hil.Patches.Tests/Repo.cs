namespace Hil.Patches.Tests;

/// <summary>Paths of the repository the tests run from (testsuites/patches is the real corpus).</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    public static string Patches => Path.Combine(Root, "testsuites", "patches");

    public static string Patch(string name) => Path.Combine(Patches, name);

    public static string Fixture(string name) => Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", name);

    private static string Find()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "HilHarness.sln"))) return d.FullName;
        throw new InvalidOperationException("HilHarness.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A temporary folder removed after the test.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "hil-patches-test-" + Guid.NewGuid().ToString("N")[..8]);
    public TempDir() => Directory.CreateDirectory(Path);

    public string Write(string name, string text)
    {
        var p = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(p)!);
        File.WriteAllText(p, text);
        return p;
    }

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}

/// <summary>
/// The qemu-optee board provisioned once per test run (warm when the cache has it: no network),
/// so that the build and board tests also run first on a fresh machine.
/// </summary>
internal static class QemuOptee
{
    public const string Board = "qemu-optee";
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static bool _done;

    public static async Task EnsureProvisionedAsync(Serilog.ILogger log)
    {
        await Gate.WaitAsync();
        try
        {
            if (_done) return;
            var cache = Hil.Kernel.HilCache.Default();
            var recipe = Hil.Qemu.Provisioning.BoardRecipe.Mainline;
            if (Hil.Qemu.Provisioning.QemuProvisioner.Current(cache, recipe) is null)
                await new Hil.Qemu.Provisioning.QemuProvisioner(cache, new Hil.Qemu.Provisioning.ProvisionOptions(), log,
                    new Hil.Qemu.Provisioning.LogProvisionProgress(log)).ProvisionAsync([recipe], CancellationToken.None);
            _done = true;
        }
        finally { Gate.Release(); }
    }
}
