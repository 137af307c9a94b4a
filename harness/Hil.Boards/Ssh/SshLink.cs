using System.Diagnostics;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Renci.SshNet;
using Renci.SshNet.Common;
using Serilog;

namespace Hil.Boards.Ssh;

/// <summary>What a command run over SSH returned: stdout, stderr and exit status, kept apart.</summary>
public sealed record SshResult(string Command, int? ExitStatus, string? ExitSignal, string Stdout, string Stderr, TimeSpan Duration)
{
    public bool Succeeded => ExitStatus == 0;
}

/// <summary>
/// SSH to a board (SSH.NET): verified host key, key or password login, commands with exit status and
/// separate stdout/stderr, SFTP upload/download, keepalive, and reconnection after the board rebooted
/// or sshd restarted (waits up to the reconnect timeout, then fails as infrastructure).
/// <para>
/// A command that times out is killed on the board, even for root logins where OpenSSH ignores the
/// SSH "signal" request: every command first reports its shell's PID on stderr (removed from the
/// result), and the whole process group is killed over a second channel.
/// </para>
/// </summary>
public sealed partial class SshLink : IAsyncDisposable
{
    private const string PidTag = "\x1ehil-pid:";
    private readonly SshSpec _spec;
    private readonly HostKeyPolicy _policy;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private SshClient? _client;
    private string? _hostKeyRefusal;

    private static int _loggingRouted;

    public SshLink(SshSpec spec, ILogger logger, HostKeyPolicy? policy = null)
    {
        // SSH.NET logs through Microsoft.Extensions.Logging, process-wide: route it once into the
        // application's Serilog logger (Log.Logger, looked up at each event).
        if (Interlocked.Exchange(ref _loggingRouted, 1) == 0)
            SshNetLoggingConfiguration.InitializeLogging(new Serilog.Extensions.Logging.SerilogLoggerFactory());
        _spec = spec;
        _policy = policy ?? HostKeyPolicy.For(spec);
        _log = logger.ForContext<SshLink>().ForContext("Ssh", $"{spec.User}@{spec.Host}:{spec.Port}");
    }

    public string Address => $"{_spec.User}@{_spec.Host}:{_spec.Port}";
    public bool IsConnected => _client?.IsConnected == true;

    /// <summary>Connections made so far (the first one included): more than one means it reconnected.</summary>
    public int Connections { get; private set; }

    /// <summary>Connects now; retries refused/unreachable connections up to <paramref name="timeout"/> (default: the connect timeout).</summary>
    public async Task ConnectAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        await _connectLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await ConnectCoreAsync(timeout ?? _spec.ConnectTimeout, ct).ConfigureAwait(false);
        }
        finally
        {
            _connectLock.Release();
        }
    }

    /// <summary>Waits until the board answers SSH again (after a reboot), up to the reconnect timeout.</summary>
    public Task WaitUntilReachableAsync(CancellationToken ct = default) => ConnectAsync(_spec.ReconnectTimeout, ct);

    private ConnectionInfo ConnectionInfo()
    {
        var methods = new List<AuthenticationMethod>();
        if (_spec.KeyFile is { } keyFile)
        {
            if (!File.Exists(keyFile)) throw new TestErrorException($"ssh.key_file {keyFile} does not exist");
            var key = _spec.KeyPassphrase is { } pp ? new PrivateKeyFile(keyFile, pp.Resolve()) : new PrivateKeyFile(keyFile);
            methods.Add(new PrivateKeyAuthenticationMethod(_spec.User, key));
        }
        if (_spec.Password is { } pw) methods.Add(new PasswordAuthenticationMethod(_spec.User, pw.Resolve()));
        return new ConnectionInfo(_spec.Host, _spec.Port, _spec.User, methods.ToArray()) { Timeout = _spec.ConnectTimeout };
    }

    private T Configure<T>(T client) where T : BaseClient
    {
        client.HostKeyReceived += (_, e) =>
        {
            var refusal = _policy.Check(_spec.Host, _spec.Port, e.HostKeyName, e.HostKey);
            _log.Debug("host key {Type} {Fingerprint}: {Verdict}", e.HostKeyName, HostKeyFingerprint.Sha256(e.HostKey), refusal ?? "trusted");
            _hostKeyRefusal = refusal;
            e.CanTrust = refusal is null;
        };
        client.KeepAliveInterval = _spec.KeepAlive;
        return client;
    }

    private async Task<SshClient> ConnectCoreAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (_client is { IsConnected: true } c) return c;
        _client?.Dispose();
        _client = null;
        var clock = Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            var client = Configure(new SshClient(ConnectionInfo()));
            try
            {
                _hostKeyRefusal = null;
                await client.ConnectAsync(ct).ConfigureAwait(false);
                _client = client;
                Connections++;
                _log.Information("ssh connected to {Address} ({Count})", Address, Connections);
                return client;
            }
            catch (SshConnectionException) when (_hostKeyRefusal is { } refusal)
            {
                client.Dispose();
                throw new HostKeyRejectedException($"ssh {Address}: refused: {refusal}");
            }
            catch (SshAuthenticationException ex)
            {
                client.Dispose();
                throw new TestErrorException($"ssh {Address}: authentication failed ({ex.Message}): check ssh.user, ssh.key_file / ssh.password", ex);
            }
            catch (Exception ex) when (ex is SocketException or SshConnectionException or SshOperationTimeoutException or IOException or ProxyException)
            {
                client.Dispose();
                // A rebooting board refuses or drops connections for a while: keep trying until the deadline.
                if (clock.Elapsed + delay > timeout)
                    throw new InfrastructureException($"ssh {Address} unreachable for {timeout.TotalSeconds:0} s: {ex.Message}", ex);
                await Task.Delay(delay, ct).ConfigureAwait(false);
                delay = TimeSpan.FromMilliseconds(Math.Min(1000, delay.TotalMilliseconds * 2));
            }
        }
    }

    /// <summary>
    /// Runs a command (one sh command line: quote arguments with <see cref="ShellQuote"/>). Reconnects
    /// first if the connection dropped (e.g. the board rebooted). On timeout the remote process group
    /// is killed and <see cref="CommandTimeoutException"/> is thrown.
    /// </summary>
    public async Task<SshResult> RunAsync(string command, TimeSpan timeout, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        var client = await EnsureConnectedAsync(ct).ConfigureAwait(false);
        // The PID line lets a timeout kill the command even where SSH signals are ignored (root).
        var wrapped = $"printf '\\036hil-pid:%s\\n' $$ >&2; {command}";
        SshCommand cmd;
        try
        {
            cmd = client.CreateCommand(wrapped);
        }
        catch (SshConnectionException)
        {
            client = await ReconnectAsync(ct).ConfigureAwait(false);
            cmd = client.CreateCommand(wrapped);
        }
        using (cmd)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            try
            {
                await cmd.ExecuteAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                var pid = ParsePid(cmd.Error);
                await KillAsync(pid).ConfigureAwait(false);
                throw new CommandTimeoutException(command, timeout, FailureClass.Product, pid is null ? "no PID reported; remote process may survive" : $"process group {pid} killed");
            }
            catch (Exception ex) when (ex is SshConnectionException or SocketException or ObjectDisposedException)
            {
                throw new InfrastructureException($"ssh {Address}: connection lost while running: {command}: {ex.Message}", ex);
            }
            var stderr = StripPid(cmd.Error);
            return new SshResult(command, cmd.ExitStatus, cmd.ExitSignal, cmd.Result, stderr, clock.Elapsed);
        }
    }

    /// <summary>Runs a command and fails as a product failure unless it exits 0.</summary>
    public async Task<SshResult> RunCheckedAsync(string command, TimeSpan timeout, CancellationToken ct = default)
    {
        var r = await RunAsync(command, timeout, ct).ConfigureAwait(false);
        if (r.ExitStatus != 0)
            throw new ProductFailureException($"ssh command exited {r.ExitStatus?.ToString() ?? "by signal " + r.ExitSignal}: {command}",
                r.Stderr.Split('\n').TakeLast(20).ToList());
        return r;
    }

    private async Task<SshClient> EnsureConnectedAsync(CancellationToken ct)
    {
        if (_client is { IsConnected: true } c) return c;
        return await ReconnectAsync(ct).ConfigureAwait(false);
    }

    private async Task<SshClient> ReconnectAsync(CancellationToken ct)
    {
        await _connectLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_client is { IsConnected: true } c) return c;
            if (_client is not null) _log.Information("ssh connection to {Address} lost; reconnecting", Address);
            var timeout = Connections == 0 ? _spec.ConnectTimeout : _spec.ReconnectTimeout;
            return await ConnectCoreAsync(timeout, ct).ConfigureAwait(false);
        }
        finally
        {
            _connectLock.Release();
        }
    }

    private async Task KillAsync(int? pid)
    {
        if (pid is null) return;
        try
        {
            var client = await EnsureConnectedAsync(CancellationToken.None).ConfigureAwait(false);
            using var kill = client.CreateCommand($"kill -KILL -- -{pid} 2>/dev/null || kill -KILL {pid} 2>/dev/null; true");
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await kill.ExecuteAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _log.Warning("could not kill timed-out command (pid {Pid}) on {Address}: {Error}", pid, Address, ex.Message);
        }
    }

    [GeneratedRegex("\x1ehil-pid:(\\d+)\n")]
    private static partial Regex PidLine();

    private static int? ParsePid(string stderr) => PidLine().Match(stderr) is { Success: true } m ? int.Parse(m.Groups[1].Value) : null;

    private static string StripPid(string stderr)
    {
        var i = stderr.IndexOf(PidTag, StringComparison.Ordinal);
        if (i < 0) return stderr;
        var nl = stderr.IndexOf('\n', i);
        return nl < 0 ? stderr.Remove(i) : stderr.Remove(i, nl - i + 1);
    }

    /// <summary>Uploads a file by SFTP (same host-key check); <paramref name="mode"/> like "755".</summary>
    public async Task UploadAsync(string localPath, string remotePath, string? mode = null, CancellationToken ct = default)
    {
        if (!File.Exists(localPath)) throw new TestErrorException($"upload: local file {localPath} does not exist");
        await WithSftpAsync(async sftp =>
        {
            await using var fs = File.OpenRead(localPath);
            await sftp.UploadFileAsync(fs, remotePath, ct).ConfigureAwait(false);
            // SSH.NET takes the octal digits as a decimal number ("755" -> 755).
            if (mode is not null) sftp.ChangePermissions(remotePath, short.Parse(mode));
        }, $"upload {localPath} to {remotePath}", ct).ConfigureAwait(false);
    }

    public async Task DownloadAsync(string remotePath, string localPath, CancellationToken ct = default)
    {
        await WithSftpAsync(async sftp =>
        {
            var tmp = localPath + ".part";
            await using (var fs = File.Create(tmp))
                await sftp.DownloadFileAsync(remotePath, fs, ct).ConfigureAwait(false);
            File.Move(tmp, localPath, overwrite: true);
        }, $"download {remotePath} to {localPath}", ct).ConfigureAwait(false);
    }

    private async Task WithSftpAsync(Func<SftpClient, Task> action, string what, CancellationToken ct)
    {
        // The first connection proves the host key and waits for a rebooting board; SFTP then uses its own.
        await EnsureConnectedAsync(ct).ConfigureAwait(false);
        using var sftp = Configure(new SftpClient(ConnectionInfo()));
        try
        {
            _hostKeyRefusal = null;
            await sftp.ConnectAsync(ct).ConfigureAwait(false);
            await action(sftp).ConfigureAwait(false);
        }
        catch (SshConnectionException) when (_hostKeyRefusal is { } refusal)
        {
            throw new HostKeyRejectedException($"ssh {Address}: refused: {refusal}");
        }
        catch (Renci.SshNet.Common.SftpPathNotFoundException ex)
        {
            throw new TestErrorException($"sftp {what}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is SshConnectionException or SocketException or IOException or SshException)
        {
            throw new InfrastructureException($"sftp {what} failed: {ex.Message}", ex);
        }
    }

    public ValueTask DisposeAsync()
    {
        _client?.Dispose();
        _client = null;
        return ValueTask.CompletedTask;
    }
}
