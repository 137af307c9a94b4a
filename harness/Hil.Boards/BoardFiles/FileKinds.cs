using System.Runtime.InteropServices;

namespace Hil.Boards.BoardFiles;

/// <summary>What a path names on disk (after following symlinks).</summary>
public enum FileKind { Missing, Regular, Directory, CharDevice, BlockDevice, Fifo, Socket, Other }

/// <summary>
/// The type of a file, which .NET does not expose (FileInfo calls /dev/null, a FIFO and a regular
/// file alike "Normal"). A board file may name /dev/null or a FIFO as a file the harness reads or
/// writes: reading /dev/zero never ends, opening a FIFO blocks, and "recording" a host key into
/// /dev/null forgets it, so such paths must be recognised before they are used.
/// <para>Uses statx(2): its layout is the same on every Linux architecture (unlike struct stat).</para>
/// </summary>
public static partial class FileKinds
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;
    private const int StModeOffset = 28; // struct statx: u32 mask, u32 blksize, u64 attributes, u32 nlink, u32 uid, u32 gid, u16 mode
    private const int WOk = 2;
    private const int XOk = 1;

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, Span<byte> buffer);

    [LibraryImport("libc", EntryPoint = "access", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Access(string path, int mode);

    /// <summary>The kind of <paramref name="path"/>, symlinks followed (a dangling link is Missing).</summary>
    public static FileKind Of(string path)
    {
        Span<byte> buf = stackalloc byte[256];
        if (Statx(AtFdCwd, path, 0, StatxType, buf) != 0) return FileKind.Missing;
        var mode = BitConverter.ToUInt16(buf[StModeOffset..]) & 0xF000;
        return mode switch
        {
            0x8000 => FileKind.Regular,
            0x4000 => FileKind.Directory,
            0x2000 => FileKind.CharDevice,
            0x6000 => FileKind.BlockDevice,
            0x1000 => FileKind.Fifo,
            0xC000 => FileKind.Socket,
            _ => FileKind.Other,
        };
    }

    /// <summary>"a directory", "a character device (like /dev/null)", …: for messages.</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Missing => "missing",
        FileKind.Regular => "a regular file",
        FileKind.Directory => "a directory",
        FileKind.CharDevice => "a character device (like /dev/null)",
        FileKind.BlockDevice => "a block device",
        FileKind.Fifo => "a FIFO (named pipe)",
        FileKind.Socket => "a socket",
        _ => "not a regular file",
    };

    /// <summary>
    /// Null when <paramref name="path"/> can be appended to as a regular file (existing, or creatable
    /// with its missing parent directories); else why not. Asks the kernel (access(2)), so a read-only
    /// file system refuses even root.
    /// </summary>
    public static string? WhyNotAppendable(string path)
    {
        var kind = Of(path);
        if (kind == FileKind.Regular)
            return Access(path, WOk) == 0 ? null : $"{path} is not writable ({Marshal.GetLastPInvokeErrorMessage()})";
        if (kind != FileKind.Missing) return $"{path} is {Describe(kind)}, not a regular file";
        // Missing: the nearest existing ancestor must be a directory we may create entries in.
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        while (dir is not null && Of(dir) == FileKind.Missing) dir = Path.GetDirectoryName(dir);
        if (dir is null) return $"{path} cannot be created";
        var dirKind = Of(dir);
        if (dirKind != FileKind.Directory) return $"{path} cannot be created: {dir} is {Describe(dirKind)}";
        return Access(dir, WOk | XOk) == 0 ? null : $"{path} cannot be created in {dir} ({Marshal.GetLastPInvokeErrorMessage()})";
    }
}
