namespace Hil.Boards.Links;

/// <summary>
/// A console that is a growing file, e.g. QEMU's <c>-serial file:secure.log</c> for the OP-TEE
/// secure world: followed like <c>tail -F</c> (waits for it to appear, starts over if truncated).
/// </summary>
public sealed class FollowedFileEndpoint(string path, TimeSpan? poll = null) : IConsoleEndpoint
{
    private readonly TimeSpan _poll = poll ?? TimeSpan.FromMilliseconds(50);

    public string Address => $"file:{path}";
    public bool CanWrite => false;

    public Task<IConsoleTransport> OpenAsync(CancellationToken ct)
    {
        if (!File.Exists(path)) throw new IOException($"console file {path} does not exist yet");
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
        return Task.FromResult<IConsoleTransport>(new Transport(fs, path, _poll));
    }

    private sealed class Transport(FileStream fs, string path, TimeSpan poll) : IConsoleTransport
    {
        public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct)
        {
            while (true)
            {
                var n = await fs.ReadAsync(buffer, ct).ConfigureAwait(false);
                if (n > 0) return n;
                // Truncated or replaced (a new QEMU run): report "gone" so the link reopens it from the start.
                var info = new FileInfo(path);
                if (!info.Exists || info.Length < fs.Position) return 0;
                await Task.Delay(poll, ct).ConfigureAwait(false);
            }
        }

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct) =>
            throw new Failures.TestErrorException($"console file {path} is read-only");

        public ValueTask DisposeAsync() => fs.DisposeAsync();
    }
}
