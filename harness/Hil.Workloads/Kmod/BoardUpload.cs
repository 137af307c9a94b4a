using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Boards.Ssh;
using Serilog;

namespace Hil.Workloads;

/// <summary>
/// Puts a file on the board. SFTP when the board serves it; otherwise through the shell, in base64
/// chunks, because the QEMU image's dropbear has no sftp-server (SshLink.UploadAsync then fails).
/// Either way the copy is checked by SHA-256 on the board and renamed into place, so a reader never
/// sees half a file.
/// </summary>
public static class BoardUpload
{
    /// <summary>
    /// Base64 characters per shell command. Dropbear drops the connection on a command longer than
    /// its MAX_CMD_LEN (9000 bytes), well before Linux's 128 KiB argument limit.
    /// </summary>
    public const int ChunkChars = 6_000;

    /// <summary>The longest command this sends (chunk, path and wrapper), kept below dropbear's limit.</summary>
    public const int MaxCommandLength = 8_000;

    // Links found without SFTP: asked once per link, not once per file.
    private static readonly ConditionalWeakTable<SshLink, object> NoSftp = new();

    public static async Task UploadAsync(SshLink ssh, string localPath, string remotePath, string mode, ILogger log, CancellationToken ct = default)
    {
        if (!File.Exists(localPath)) throw new TestErrorException($"upload: {localPath} does not exist");
        var content = await File.ReadAllBytesAsync(localPath, ct).ConfigureAwait(false);
        var dir = Path.GetDirectoryName(remotePath.Replace('\\', '/'))!.Replace('\\', '/');
        await CheckedAsync(ssh, ShellQuote.Join("mkdir", "-p", dir), TimeSpan.FromSeconds(30), "create " + dir, ct).ConfigureAwait(false);

        if (!NoSftp.TryGetValue(ssh, out _))
        {
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                cts.CancelAfter(TimeSpan.FromSeconds(60));
                var tmp = remotePath + ".part";
                await ssh.UploadAsync(localPath, tmp, mode, cts.Token).ConfigureAwait(false);
                await CheckedAsync(ssh, VerifyAndMove(tmp, remotePath, Sha256(content), mode), TimeSpan.FromSeconds(30), "verify " + remotePath, ct).ConfigureAwait(false);
                return;
            }
            // SSH.NET reports a missing SFTP server in several ways (a closed channel, "the session is
            // not open", a timeout), not all wrapped by SshLink: anything but a refused host key or the
            // caller's own cancellation means "use the shell".
            catch (Exception ex) when (ex is not HostKeyRejectedException && !ct.IsCancellationRequested)
            {
                log.Information("upload: SFTP not usable on {Address} ({Error}); copying through the shell instead", ssh.Address, ex.Message);
                NoSftp.AddOrUpdate(ssh, new object());
            }
        }
        foreach (var command in ShellCommands(content, remotePath, mode))
            await CheckedAsync(ssh, command, TimeSpan.FromSeconds(60), "upload " + remotePath, ct).ConfigureAwait(false);
    }

    /// <summary>The shell commands that write <paramref name="content"/> to <paramref name="remotePath"/> (every argument quoted).</summary>
    public static IReadOnlyList<string> ShellCommands(byte[] content, string remotePath, string mode)
    {
        if (remotePath.Length > 512) throw new ArgumentException("remote path too long for a board command", nameof(remotePath));
        var tmp = remotePath + ".part";
        var b64 = Convert.ToBase64String(content);
        var commands = new List<string> { ShellQuote.Join("rm", "-f", tmp) + " && " + ShellQuote.Join("touch", tmp) };
        for (var i = 0; i < b64.Length; i += ChunkChars)
        {
            var chunk = b64.Substring(i, Math.Min(ChunkChars, b64.Length - i));
            commands.Add($"printf %s {ShellQuote.Quote(chunk)} | base64 -d >> {ShellQuote.Quote(tmp)}");
        }
        commands.Add(VerifyAndMove(tmp, remotePath, Sha256(content), mode));
        return commands;
    }

    private static string VerifyAndMove(string tmp, string remotePath, string sha256, string mode) =>
        $"h=$(sha256sum {ShellQuote.Quote(tmp)} | cut -d ' ' -f 1) && " +
        $"if [ \"$h\" != {ShellQuote.Quote(sha256)} ]; then echo \"checksum mismatch: $h\" >&2; exit 1; fi && " +
        ShellQuote.Join("chmod", mode, tmp) + " && " + ShellQuote.Join("mv", "-f", tmp, remotePath);

    private static string Sha256(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    private static async Task CheckedAsync(SshLink ssh, string command, TimeSpan timeout, string what, CancellationToken ct)
    {
        var r = await ssh.RunAsync(command, timeout, ct).ConfigureAwait(false);
        if (r.ExitStatus != 0)
            throw new InfrastructureException($"{what} on {ssh.Address} failed (exit {r.ExitStatus?.ToString() ?? r.ExitSignal}): {r.Stderr.Trim()}");
    }
}
