using Hil.Kernel;
using Serilog;

namespace Hil.Qemu.Provisioning;

/// <summary>
/// One provisioning at a time per cache: an exclusive lock on a file (flock, released by the kernel
/// when the holder exits, so a crashed run never leaves a stale lock). A second run waits.
/// </summary>
public sealed class ProvisionLock : IDisposable
{
    private readonly FileStream _stream;
    private ProvisionLock(FileStream s) => _stream = s;

    public static async Task<ProvisionLock> AcquireAsync(HilCache cache, ILogger log, TimeSpan timeout, CancellationToken ct)
    {
        Directory.CreateDirectory(cache.Root);
        var deadline = DateTime.UtcNow + timeout;
        var told = false;
        while (true)
        {
            try
            {
                // FileShare.None takes an exclusive advisory lock on Unix.
                var fs = new FileStream(cache.LockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                fs.SetLength(0);
                var pid = System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId + "\n");
                fs.Write(pid); fs.Flush();
                return new ProvisionLock(fs);
            }
            catch (IOException)
            {
                if (!told) { log.Information("provision: another provisioning holds {Lock}; waiting", cache.LockFile); told = true; }
                if (DateTime.UtcNow > deadline)
                    throw new ProvisioningException($"another provisioning still holds {cache.LockFile} after {timeout.TotalMinutes:0} min");
                await Task.Delay(500, ct);
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
