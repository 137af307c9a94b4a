using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Hil.Peers;

/// <summary>One ser2net port: where clients connect, what it connects to, and how it speaks.</summary>
/// <param name="Port">loopback TCP port clients (the harness) connect to</param>
/// <param name="Connector">ser2net's device: <c>tcp,127.0.0.1,PORT</c> (a QEMU UART) or <c>serialdev,/dev/ttyX,115200n81,local</c></param>
/// <param name="Telnet">true: <c>telnet(rfc2217)</c> accepter (ser2net's and labgrid's default); false: raw TCP</param>
public sealed record Ser2netPort(int Port, string Connector, bool Telnet);

/// <summary>
/// A real ser2net (Debian's 4.x, YAML configuration) on loopback, in the foreground under our own
/// process group: the console server a lab puts in front of its boards' UARTs. It can be restarted
/// with the same configuration (the console must survive that), and its ports are checked free first.
/// </summary>
public sealed class Ser2netPeer : IDisposable
{
    private PeerProcess? _process;

    private Ser2netPeer(string directory, IReadOnlyList<Ser2netPort> ports)
    {
        Directory = directory;
        Ports = ports;
        ConfigFile = Path.Combine(directory, "ser2net.yaml");
        LogFile = Path.Combine(directory, "ser2net.log");
    }

    public string Directory { get; }
    public IReadOnlyList<Ser2netPort> Ports { get; }
    public string ConfigFile { get; }
    public string LogFile { get; }
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Writes the configuration and starts ser2net; returns once every port accepts connections.</summary>
    public static async Task<Ser2netPeer> StartAsync(string directory, IReadOnlyList<Ser2netPort> ports)
    {
        System.IO.Directory.CreateDirectory(directory);
        var peer = new Ser2netPeer(directory, ports);
        File.WriteAllText(peer.ConfigFile, Config(ports));
        await peer.StartProcessAsync().ConfigureAwait(false);
        return peer;
    }

    /// <summary>The YAML ser2net 4 reads: one connection per port, the old user kicked when a new one comes (a reconnecting harness).</summary>
    public static string Config(IReadOnlyList<Ser2netPort> ports)
    {
        var sb = new StringBuilder("%YAML 1.1\n---\n# written by Hil.Peers.Ser2netPeer\n");
        foreach (var p in ports)
        {
            var accepter = (p.Telnet ? "telnet(rfc2217),tcp," : "tcp,") + $"127.0.0.1,{p.Port}";
            sb.Append($"connection: &port{p.Port}\n  accepter: {accepter}\n  connector: {p.Connector}\n  enable: on\n  options:\n    kickolduser: true\n");
        }
        return sb.ToString();
    }

    private async Task StartProcessAsync()
    {
        foreach (var p in Ports)
            if (!IsFree(p.Port))
                throw new InvalidOperationException($"ser2net: loopback port {p.Port} is taken by another process (the lab layout needs it)");
        // -n: stay in the foreground (we own it), -d: log to stderr (our log file), -P: no pidfile in /run.
        _process = PeerProcess.Start(["ser2net", "-n", "-d", "-c", ConfigFile, "-P", Path.Combine(Directory, "ser2net.pid")], LogFile);
        var clock = Stopwatch.StartNew();
        foreach (var p in Ports)
        {
            while (!Listening(p.Port))
            {
                if (_process.HasExited || clock.Elapsed > TimeSpan.FromSeconds(10))
                    throw new InvalidOperationException($"ser2net did not open port {p.Port}: {Tail(LogFile)}");
                await Task.Delay(20).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Kills ser2net (as a crash or an admin's restart would) and starts it again; returns how long its ports were gone.</summary>
    public async Task<TimeSpan> RestartAsync(TimeSpan downtime)
    {
        var clock = Stopwatch.StartNew();
        Stop();
        await Task.Delay(downtime).ConfigureAwait(false);
        await StartProcessAsync().ConfigureAwait(false);
        return clock.Elapsed;
    }

    public void Stop()
    {
        _process?.Dispose();
        _process = null;
        // Its listening sockets close with the process; wait so that a restart can bind them again.
        var clock = Stopwatch.StartNew();
        while (Ports.Any(p => Listening(p.Port)) && clock.Elapsed < TimeSpan.FromSeconds(5)) Thread.Sleep(20);
    }

    public void Dispose() => Stop();

    private static bool IsFree(int port)
    {
        try
        {
            using var l = new TcpListener(IPAddress.Loopback, port);
            l.Start();
            return true;
        }
        catch (SocketException) { return false; }
    }

    /// <summary>Whether a socket listens on loopback:port (never connects: a connection would open the device).</summary>
    public static bool Listening(int port)
    {
        var hex = $":{port:X4}";
        return File.ReadLines("/proc/net/tcp").Skip(1)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Any(f => f.Length > 3 && f[1].EndsWith(hex, StringComparison.Ordinal) && f[3] == "0A");
    }

    internal static string Tail(string file) =>
        File.Exists(file) ? string.Join(" | ", File.ReadAllLines(file).Where(l => l.Trim().Length > 0).TakeLast(3)) : "(no log)";
}
