using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Hil.Peers;

/// <summary>
/// A real PDUDaemon (Debian's) on loopback with its HTTP listener and one PDU whose
/// <c>localcmdline</c> driver runs shell commands for on/off (<c>%s</c> is the outlet number): the
/// power of a lab in a box. PDUDaemon answers a request once its driver has run the command.
/// </summary>
public sealed class PduDaemonPeer : IDisposable
{
    private readonly PeerProcess _process;

    private PduDaemonPeer(PeerProcess process, int port, string pdu, string logFile)
    {
        _process = process;
        Port = port;
        PduHostname = pdu;
        LogFile = logFile;
    }

    public int Port { get; }
    public string PduHostname { get; }
    public string LogFile { get; }
    public string Url => $"http://127.0.0.1:{Port}";

    /// <param name="commandOn">shell command line for "on" (PDUDaemon runs it with sh -c); %s = the outlet</param>
    public static async Task<PduDaemonPeer> StartAsync(string directory, int port, string pduHostname, string commandOn, string commandOff)
    {
        Directory.CreateDirectory(directory);
        try
        {
            using var l = new TcpListener(IPAddress.Loopback, port);
            l.Start();
        }
        catch (SocketException)
        {
            throw new InvalidOperationException($"pdudaemon: loopback port {port} is taken by another process (the lab layout needs it)");
        }
        var config = new Dictionary<string, object>
        {
            ["daemon"] = new Dictionary<string, object> { ["hostname"] = "127.0.0.1", ["port"] = port, ["listener"] = "http", ["logging_level"] = "DEBUG" },
            // retries 1: a failing outlet command is reported by our harness, not retried five times by PDUDaemon.
            ["pdus"] = new Dictionary<string, object>
            {
                [pduHostname] = new Dictionary<string, object> { ["driver"] = "localcmdline", ["cmd_on"] = commandOn, ["cmd_off"] = commandOff, ["retries"] = 1 },
            },
        };
        var configFile = Path.Combine(directory, "pdudaemon.conf");
        File.WriteAllText(configFile, JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
        var log = Path.Combine(directory, "pdudaemon.log");
        var process = PeerProcess.Start(["pdudaemon", "--conf", configFile, "--loglevel", "DEBUG"], log);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port).ConfigureAwait(false);
                break;
            }
            catch (SocketException) when (!process.HasExited && clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(50).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                process.Dispose();
                throw new InvalidOperationException($"pdudaemon did not listen on port {port}: {Ser2netPeer.Tail(log)}");
            }
        }
        return new PduDaemonPeer(process, port, pduHostname, log);
    }

    /// <summary>Quotes one word for the command lines PDUDaemon hands to sh.</summary>
    public static string Quote(string word) => "'" + word.Replace("'", "'\\''") + "'";

    public void Dispose() => _process.Dispose();
}
