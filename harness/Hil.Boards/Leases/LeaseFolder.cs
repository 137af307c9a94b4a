using System.Runtime.InteropServices;
using System.Text;
using Hil.Boards.Failures;
using Microsoft.Win32.SafeHandles;

namespace Hil.Boards.Leases;

/// <summary>
/// The folder of lease files: BOARD.lease (the lease, replaced atomically) and BOARD.lock (only ever
/// flock'ed, never deleted: deleting a lock file would let one process lock the old inode while
/// another locks a new one). Every read-decide-write of a lease happens under the board's flock.
/// </summary>
public sealed partial class LeaseFolder
{
    /// <summary>Names a lease folder other than the default (shared by every run on the host, or by a lab over NFS).</summary>
    public const string Variable = "HIL_LEASES";

    private const int LockEx = 2;
    private const int LockNb = 4;
    private const int LockUn = 8;
    private const int Ewouldblock = 11;

    private const int OReadWrite = 2;
    private const int OCreate = 0x40;
    private const int OCloseOnExec = 0x80000;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(SafeFileHandle fd, int operation);

    public LeaseFolder(string path) => Path = System.IO.Path.GetFullPath(path);

    public string Path { get; }

    /// <summary>$HIL_LEASES, else ~/.cache/hil/leases.</summary>
    public static string DefaultPath()
    {
        var fromEnv = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(fromEnv)) return fromEnv;
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return System.IO.Path.Combine(home, ".cache", "hil", "leases");
    }

    public string LeaseFile(string board) => System.IO.Path.Combine(Path, board + ".lease");
    private string LockFile(string board) => System.IO.Path.Combine(Path, board + ".lock");

    /// <summary>
    /// A board name becomes a file name: only letters, digits, '.', '_' and '-', not starting with '.',
    /// so no name can point outside the folder or hide as a dot file.
    /// </summary>
    public static void CheckBoardName(string board)
    {
        if (board.Length == 0 || board.Length > 200 || board[0] == '.' || !board.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            throw new TestErrorException($"board name '{board}' cannot name a lease: use letters, digits, '.', '_' and '-' (not first)");
    }

    /// <summary>Creates the folder; a folder that cannot be made or written is a one-line error naming it.</summary>
    public void Ensure()
    {
        try
        {
            Directory.CreateDirectory(Path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw NotWritable(ex);
        }
    }

    private TestErrorException NotWritable(Exception ex) => NotWritable(ex.Message.Split('\n')[0], ex);

    private TestErrorException NotWritable(string why, Exception? ex = null) =>
        new($"lease folder {Path} is not writable: {why} (set {Variable} to a writable folder)", ex);

    /// <summary>
    /// Holds the board's flock while <paramref name="body"/> runs. The lock is tried without
    /// blocking until <paramref name="deadline"/>: a blocking flock could not be given up, and a
    /// process stuck while holding it must not hang every other run.
    /// </summary>
    public async Task<T> UnderLockAsync<T>(string board, DateTimeOffset deadline, Func<T> body, CancellationToken ct)
    {
        // open(2) itself, not File.OpenHandle: .NET takes a flock of its own on files it opens, which
        // would make a second process fail to open the lock file instead of waiting for the lock.
        var fd = Open(LockFile(board), OReadWrite | OCreate | OCloseOnExec, 0x1B6 /* 0666, less the umask */);
        if (fd < 0) throw NotWritable($"cannot create {LockFile(board)}: {Marshal.GetLastPInvokeErrorMessage()}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        using (handle)
        {
            while (Flock(handle, LockEx | LockNb) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != Ewouldblock)
                    throw new InfrastructureException($"cannot lock {LockFile(board)}: {Marshal.GetPInvokeErrorMessage(errno)}");
                if (DateTimeOffset.UtcNow > deadline)
                    throw new InfrastructureException($"lock file {LockFile(board)} stayed locked by another process (a lease holder stuck mid-update?)");
                await Task.Delay(10, ct).ConfigureAwait(false);
            }
            try
            {
                return body();
            }
            finally
            {
                Flock(handle, LockUn);
            }
        }
    }

    /// <summary>What the board's lease file holds now (call under the lock).</summary>
    public LeaseState Read(string board, DateTimeOffset now)
    {
        var file = LeaseFile(board);
        string text;
        DateTime mtime;
        try
        {
            text = File.ReadAllText(file, Encoding.UTF8);
            mtime = File.GetLastWriteTimeUtc(file);
        }
        catch (FileNotFoundException)
        {
            return LeaseState.Free;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InfrastructureException($"lease file {file} cannot be read: {ex.Message.Split('\n')[0]}", ex);
        }
        try
        {
            return new LeaseState(LeaseRecord.Parse(text, file, now), null, mtime);
        }
        catch (LeaseCorruptException ex)
        {
            return new LeaseState(null, ex, mtime);
        }
    }

    /// <summary>Writes the lease atomically (temp file, fsync, rename): a reader sees the old lease or the new one, never half of one.</summary>
    public void Write(LeaseRecord lease)
    {
        var file = LeaseFile(lease.Board);
        var temp = $"{file}.tmp-{lease.Holder.Pid}-{lease.Token}";
        try
        {
            using (var s = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                s.Write(Encoding.UTF8.GetBytes(lease.ToJson()));
                s.Flush(flushToDisk: true);
            }
            File.Move(temp, file, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); }
            catch (Exception) { /* the temp file is ours and harmless; the write error is what matters */ }
            throw NotWritable(ex);
        }
    }

    /// <summary>Deletes the board's lease file (call under the lock, after checking it is ours).</summary>
    public void Delete(string board) => File.Delete(LeaseFile(board));
}

/// <summary>A lease file as found: free (no file), a lease, or a corrupt file (with its mtime, which decides when it may be taken over).</summary>
public sealed record LeaseState(LeaseRecord? Lease, LeaseCorruptException? Corrupt, DateTime WrittenUtc)
{
    public static readonly LeaseState Free = new(null, null, default);
    public bool IsFree => Lease is null && Corrupt is null;
}
