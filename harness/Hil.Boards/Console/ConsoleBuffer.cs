namespace Hil.Boards.Console;

/// <summary>
/// Bytes received on a console, addressed by absolute offset since the link was created, for the one
/// reader that drives the console at a time (boot sequencer, then shell). Readers wait for new bytes
/// without polling; consumed bytes are trimmed so memory stays bounded over long runs.
/// </summary>
public sealed class ConsoleBuffer
{
    private readonly Lock _lock = new();
    private byte[] _data = new byte[64 * 1024];
    private int _count;
    private long _base;
    private TaskCompletionSource _grew = NewSignal();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Absolute offset just past the last byte received.</summary>
    public long End
    {
        get { lock (_lock) return _base + _count; }
    }

    /// <summary>Offset of the oldest byte still held.</summary>
    public long Start
    {
        get { lock (_lock) return _base; }
    }

    public void Append(ReadOnlySpan<byte> bytes)
    {
        TaskCompletionSource signal;
        lock (_lock)
        {
            if (_count + bytes.Length > _data.Length)
                Array.Resize(ref _data, Math.Max(_data.Length * 2, _count + bytes.Length));
            bytes.CopyTo(_data.AsSpan(_count));
            _count += bytes.Length;
            signal = _grew;
            _grew = NewSignal();
        }
        signal.TrySetResult();
    }

    /// <summary>Copies bytes [from, End) (from is clamped to what is still held).</summary>
    public byte[] Read(long from, out long readFrom)
    {
        lock (_lock)
        {
            readFrom = Math.Max(from, _base);
            var offset = (int)(readFrom - _base);
            return _data.AsSpan(offset, _count - offset).ToArray();
        }
    }

    /// <summary>Completes when bytes beyond <paramref name="offset"/> exist, or the token fires.</summary>
    public async Task WaitBeyondAsync(long offset, CancellationToken ct)
    {
        Task wait;
        lock (_lock)
        {
            if (_base + _count > offset) return;
            wait = _grew.Task;
        }
        await wait.WaitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Forgets bytes before <paramref name="offset"/>: the reader will never look at them again.</summary>
    public void Discard(long offset)
    {
        lock (_lock)
        {
            var n = (int)Math.Clamp(offset - _base, 0, _count);
            if (n == 0) return;
            Buffer.BlockCopy(_data, n, _data, 0, _count - n);
            _count -= n;
            _base += n;
        }
    }
}
