using Hil.Kernel;
using Hil.Qemu.Provisioning;
using Serilog;

namespace Hil.Qemu.Tests;

/// <summary>
/// One provisioning of both boards for the whole test run, into the user's real cache
/// ($HIL_CACHE or ~/.cache/hil): cold on a fresh machine, warm afterwards. Tests that need
/// "from nothing" semantics check what the run did (its step records) rather than assume it.
/// </summary>
public static class TestEnv
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static ProvisionResult? _first;

    public static HilCache Cache { get; } = HilCache.Default();

    public static ILogger Log { get; } = new LoggerConfiguration().MinimumLevel.Information()
        .WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}").CreateLogger();

    /// <summary>The first provisioning of this test run (both boards).</summary>
    public static async Task<ProvisionResult> ProvisionedAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_first is null)
            {
                _first = await new QemuProvisioner(Cache, new ProvisionOptions(), Log, new LogProvisionProgress(Log))
                    .ProvisionAsync(BoardRecipe.All, CancellationToken.None);
                TestContext.Progress.WriteLine($"provisioning ({(_first.DidWork ? "cold" : "warm")}): {_first.Elapsed.TotalSeconds:0.0} s");
            }
            return _first;
        }
        finally { Gate.Release(); }
    }

    public static async Task<ProvisionedImage> ImageAsync(string board) =>
        (await ProvisionedAsync()).Images.Single(i => i.Board == board);

    /// <summary>The repository root (boards/ lives there).</summary>
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
        var d = Path.Combine(Path.GetTempPath(), $"hil-test-{name}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(d);
        return d;
    }
}

/// <summary>Reads a gzip'd newc cpio archive (the initramfs) into name → (mode, data), for checks only.</summary>
public static class InitramfsReader
{
    public static Dictionary<string, (uint Mode, byte[] Data)> Read(string path)
    {
        using var gz = new System.IO.Compression.GZipStream(File.OpenRead(path), System.IO.Compression.CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        var b = ms.ToArray();
        var result = new Dictionary<string, (uint, byte[])>();
        var pos = 0;
        uint Hex(int field) => Convert.ToUInt32(System.Text.Encoding.ASCII.GetString(b, pos + 6 + field * 8, 8), 16);
        while (true)
        {
            if (System.Text.Encoding.ASCII.GetString(b, pos, 6) != "070701") throw new InvalidDataException($"bad cpio magic at {pos}");
            var mode = Hex(1);
            var size = (int)Hex(6);
            var nameSize = (int)Hex(11);
            var name = System.Text.Encoding.UTF8.GetString(b, pos + 110, nameSize - 1);
            pos += 110 + nameSize;
            pos = (pos + 3) & ~3;
            if (name == "TRAILER!!!") return result;
            result[name] = (mode, b.AsSpan(pos, size).ToArray());
            pos += size;
            pos = (pos + 3) & ~3;
        }
    }
}
