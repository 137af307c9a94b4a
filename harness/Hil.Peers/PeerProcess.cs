using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Hil.Peers;

/// <summary>A child process of a peer, killed (with its process group) when the peer is disposed.</summary>
public sealed class PeerProcess : IDisposable
{
    private readonly Process _process;

    private PeerProcess(Process process, string describe)
    {
        _process = process;
        Describe = describe;
    }

    public string Describe { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>Starts argv[0] with arguments (no shell); stdout/stderr go to <paramref name="logFile"/>.</summary>
    public static PeerProcess Start(IReadOnlyList<string> argv, string logFile, IDictionary<string, string>? env = null)
    {
        // setsid: the peer gets its own process group, so Kill() takes its children (the shell) too.
        var psi = new ProcessStartInfo("setsid") { UseShellExecute = false, RedirectStandardInput = true };
        psi.ArgumentList.Add("sh");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$@\" >>\"$HIL_PEER_LOG\" 2>&1");
        psi.ArgumentList.Add("peer");
        foreach (var a in argv) psi.ArgumentList.Add(a);
        psi.Environment["HIL_PEER_LOG"] = logFile;
        if (env is not null)
            foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {argv[0]}");
        return new PeerProcess(p, string.Join(' ', argv));
    }

    /// <summary>Kills the peer and everything it started.</summary>
    public void Kill()
    {
        if (_process.HasExited) return;
        try
        {
            // The tree first (forked children such as sshd's per-connection processes), while the
            // parent still links them; then the process group (setsid), for anything reparented.
            _process.Kill(entireProcessTree: true);
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-KILL", "--", "-" + _process.Id]) { RedirectStandardError = true });
            kill?.WaitForExit(5000);
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
        }
        _process.WaitForExit(5000);
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    /// <summary>A port that was free a moment ago on 127.0.0.1 (callers retry if it is taken in between).</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Waits until a TCP port accepts connections.</summary>
    public static async Task WaitForPortAsync(int port, TimeSpan timeout, Func<bool>? stillAlive = null)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port).ConfigureAwait(false);
                return;
            }
            catch (SocketException) when (clock.Elapsed < timeout && (stillAlive?.Invoke() ?? true))
            {
                await Task.Delay(30).ConfigureAwait(false);
            }
        }
    }

    public static async Task WaitForFileAsync(string path, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!File.Exists(path))
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"{path} did not appear within {timeout}");
            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    /// <summary>Runs a tool to completion; throws with its output if it fails.</summary>
    public static string Run(string file, params string[] args) => Run(file, args, null);

    /// <summary>Runs a tool to completion with <paramref name="stdin"/> as its input (secrets never go on a command line).</summary>
    public static string Run(string file, string[] args, string? stdin)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {err.Result}");
        return output;
    }
}
