using System.Globalization;
using System.Text;

namespace Hil.Boards.Console;

/// <summary>
/// The board's console log, written as bytes arrive, whatever the shell layer is doing:
/// <list type="bullet">
/// <item><c>NAME.raw</c>: exactly the bytes received, nothing added (compare it byte for byte with the peer).</item>
/// <item><c>NAME.log</c>: the same bytes with a UTC timestamp in front of every line, for people.</item>
/// </list>
/// Both are flushed to the OS after every chunk, so a crash of the harness loses nothing it had received.
/// <para>
/// Secrets registered with <see cref="Mask"/> (the console login password) never reach either file:
/// a board that echoes the password as it is typed has it replaced by '*' of the same length. A
/// chunk that ends in the first bytes of a secret is held back until the next chunk shows whether
/// the secret follows (the echo may arrive a byte at a time); everything else is written at once.
/// </para>
/// </summary>
public sealed class ConsoleLog : IDisposable
{
    private readonly FileStream _raw;
    private readonly FileStream _lines;
    private readonly TimeProvider _clock;
    private readonly Lock _lock = new();
    private readonly List<byte> _line = [];
    private bool _atLineStart = true;
    private long _position;
    private readonly List<byte[]> _secrets = [];
    private byte[] _held = [];

    public ConsoleLog(string directory, string name, TimeProvider? clock = null)
    {
        Directory.CreateDirectory(directory);
        RawPath = Path.Combine(directory, name + ".raw");
        LinesPath = Path.Combine(directory, name + ".log");
        // FileShare.Read: people tail these files while a run is going on.
        _raw = new FileStream(RawPath, FileMode.Create, FileAccess.Write, FileShare.Read, 1, FileOptions.None);
        _lines = new FileStream(LinesPath, FileMode.Create, FileAccess.Write, FileShare.Read, 4096, FileOptions.None);
        _clock = clock ?? TimeProvider.System;
    }

    public string RawPath { get; }
    public string LinesPath { get; }

    /// <summary>Bytes logged so far: an offset into <see cref="RawPath"/>, used to slice the log per test.</summary>
    public long Position
    {
        get { lock (_lock) return _position; }
    }

    /// <summary>Raised (under no lock of ours) for every complete line, without its line ending.</summary>
    public event Action<ConsoleLine>? LineCompleted;

    /// <summary>From now on, <paramref name="secret"/> is written as '*'s wherever it appears in the received bytes.</summary>
    public void Mask(string secret)
    {
        if (secret.Length == 0) return;
        var bytes = Encoding.UTF8.GetBytes(secret);
        lock (_lock)
            if (!_secrets.Any(s => s.AsSpan().SequenceEqual(bytes))) _secrets.Add(bytes);
    }

    public void Append(ReadOnlySpan<byte> data)
    {
        List<ConsoleLine>? completed = null;
        lock (_lock)
        {
            if (_secrets.Count > 0)
            {
                var masked = MaskLocked(data);
                WriteLocked(masked, ref completed);
            }
            else
            {
                WriteLocked(data, ref completed);
            }
        }
        if (completed is null) return;
        foreach (var l in completed) LineCompleted?.Invoke(l);
    }

    /// <summary>Held-back bytes + <paramref name="data"/> with every secret masked; keeps back a tail that may begin one.</summary>
    private byte[] MaskLocked(ReadOnlySpan<byte> data)
    {
        var input = new byte[_held.Length + data.Length];
        _held.CopyTo(input, 0);
        data.CopyTo(input.AsSpan(_held.Length));
        _held = [];
        var output = new byte[input.Length];
        var o = 0;
        var i = 0;
        while (i < input.Length)
        {
            var rest = input.AsSpan(i);
            var masked = 0;
            var mayBegin = false;
            foreach (var secret in _secrets)
            {
                if (rest.StartsWith(secret)) masked = Math.Max(masked, secret.Length);
                else if (secret.Length > rest.Length && secret.AsSpan().StartsWith(rest)) mayBegin = true;
            }
            if (masked > 0)
            {
                output.AsSpan(o, masked).Fill((byte)'*');
                o += masked;
                i += masked;
                continue;
            }
            if (mayBegin)
            {
                _held = rest.ToArray();
                break;
            }
            output[o++] = input[i++];
        }
        return output[..o];
    }

    private void WriteLocked(ReadOnlySpan<byte> data, ref List<ConsoleLine>? completed)
    {
        {
            _raw.Write(data);
            _raw.Flush();
            var now = _clock.GetUtcNow();
            var start = 0;
            for (var i = 0; i < data.Length; i++)
            {
                if (_atLineStart)
                {
                    _lines.Write(Encoding.ASCII.GetBytes(now.ToString("'['yyyy-MM-dd'T'HH:mm:ss.fff'Z] '", CultureInfo.InvariantCulture)));
                    _atLineStart = false;
                }
                if (data[i] != (byte)'\n') continue;
                _lines.Write(data[start..(i + 1)]);
                _line.AddRange(data[start..i]);
                (completed ??= []).Add(new ConsoleLine(now, Decode(_line)));
                _line.Clear();
                start = i + 1;
                _atLineStart = true;
            }
            if (start < data.Length)
            {
                _lines.Write(data[start..]);
                _line.AddRange(data[start..]);
            }
            _lines.Flush();
            _position += data.Length;
        }
    }

    /// <summary>Reads back raw bytes [from, to) of this log (for per-test slices).</summary>
    public byte[] ReadRaw(long from, long to)
    {
        using var fs = new FileStream(RawPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        fs.Position = from;
        var buf = new byte[Math.Max(0, to - from)];
        fs.ReadExactly(buf);
        return buf;
    }

    private static string Decode(List<byte> bytes)
    {
        var s = Encoding.UTF8.GetString(bytes.ToArray());
        return s.TrimEnd('\r');
    }

    public void Dispose()
    {
        lock (_lock)
        {
            // A held-back tail that never became a secret is console output like any other.
            if (_held.Length > 0)
            {
                List<ConsoleLine>? ignored = null;
                var held = _held;
                _held = [];
                WriteLocked(held, ref ignored);
            }
            _raw.Dispose();
            _lines.Dispose();
        }
    }
}

/// <summary>One console line as received (the timestamp is that of its last chunk).</summary>
public sealed record ConsoleLine(DateTimeOffset Time, string Text);
