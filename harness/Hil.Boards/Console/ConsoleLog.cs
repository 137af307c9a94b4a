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

    public void Append(ReadOnlySpan<byte> data)
    {
        List<ConsoleLine>? completed = null;
        lock (_lock)
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
        if (completed is null) return;
        foreach (var l in completed) LineCompleted?.Invoke(l);
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
            _raw.Dispose();
            _lines.Dispose();
        }
    }
}

/// <summary>One console line as received (the timestamp is that of its last chunk).</summary>
public sealed record ConsoleLine(DateTimeOffset Time, string Text);
