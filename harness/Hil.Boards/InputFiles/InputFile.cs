using System.Text;

namespace Hil.Boards.InputFiles;

/// <summary>A user's input file the CLI cannot use (missing, a folder, a device, too large, unreadable).</summary>
public sealed class InputFileException(string path, string what, string problem)
    : Exception($"{path}:1: ({what}): {problem}")
{
    public string Problem { get; } = problem;
}

/// <summary>
/// Opens and reads the files users hand the harness (scenarios, traces, board files) with bounds: only
/// regular files of a sane size. /dev/zero would otherwise be read forever, a FIFO without a writer
/// would block the open for ever, and a folder or an unreadable file would end in a stack trace.
/// </summary>
public static class InputFile
{
    /// <summary>How long opening may block (a FIFO with no writer blocks in open(2)).</summary>
    private static readonly TimeSpan OpenTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Reads a whole text file of at most <paramref name="maxBytes"/> bytes (UTF-8).</summary>
    public static string ReadText(string path, string what, long maxBytes)
    {
        using var stream = OpenRead(path, what);
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        try
        {
            while ((n = stream.Read(chunk, 0, chunk.Length)) > 0)
            {
                if (buffer.Length + n > maxBytes)
                    throw new InputFileException(path, what, $"larger than {Size(maxBytes)}: not a {what} file (a device or a stream that does not end?)");
                buffer.Write(chunk, 0, n);
            }
        }
        catch (IOException ex)
        {
            throw new InputFileException(path, what, $"cannot be read: {ex.Message}");
        }
        var bytes = buffer.ToArray();
        if (Array.IndexOf(bytes, (byte)0) >= 0)
            throw new InputFileException(path, what, "holds NUL bytes: a binary file, not a text file");
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new InputFileException(path, what, "is not UTF-8 text");
        }
    }

    /// <summary>Opens a file for reading, refusing folders and anything whose open blocks (FIFOs, some devices).</summary>
    public static Stream OpenRead(string path, string what)
    {
        if (Directory.Exists(path)) throw new InputFileException(path, what, "is a folder, not a file");
        if (!File.Exists(path)) throw new InputFileException(path, what, "no such file");
        var open = Task.Run(() => (Stream)new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        try
        {
            if (!open.Wait(OpenTimeout))
                throw new InputFileException(path, what, $"opening it blocked for {OpenTimeout.TotalSeconds:0} s: a FIFO or device, not a regular file");
            return open.Result;
        }
        catch (AggregateException ex) when (ex.InnerException is UnauthorizedAccessException or IOException)
        {
            throw new InputFileException(path, what, $"cannot be opened: {ex.InnerException.Message}");
        }
    }

    private static string Size(long bytes) => bytes >= 1 << 20 ? $"{bytes >> 20} MiB" : $"{bytes >> 10} KiB";
}
