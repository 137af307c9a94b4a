using System.Diagnostics;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Power;
using Hil.Peers;
using Serilog;

namespace Hil.Boards.Tests;

/// <summary>Power drivers against real programs: external commands, and a real PDUDaemon server.</summary>
[TestFixture, Category("loopback")]
public sealed class PowerDriverTests : BoardTest
{
    [Test, CancelAfter(30_000)]
    public async Task External_commands_switch_and_report_power(CancellationToken ct)
    {
        using var ws = new Workspace();
        var state = Path.Combine(ws.Dir, "powered");
        var spec = ws.Board($"""
            name: relay
            console: {"{"} device: /dev/ttyHIL-none {"}"}
            power:
              driver: command
              on: [touch, "{state}"]
              off: [rm, -f, "{state}"]
              status: [test, -f, "{state}"]
              off_time: 100ms
            """);
        var power = PowerDrivers.Create(new PowerContext(spec, spec.Power, ws.Logger));
        await power.OnAsync(ct);
        Assert.That(await power.IsAliveAsync(ct), Is.True);
        await power.OffAsync(ct);
        Assert.That(await power.IsAliveAsync(ct), Is.False);
        await power.CycleAsync(ct);
        Assert.That(await power.IsAliveAsync(ct), Is.True);
        var broken = new CommandPowerDriver(spec.Power with { On = ["false"] }, ws.Logger);
        var ex = await Assert.ThrowsAsync<InfrastructureException>(() => broken.OnAsync(ct));
        Assert.That(ex!.Message, Does.Contain("exit code 1"));
        // A power command's own error lines are the cause: they travel in the one-line message.
        var talking = new CommandPowerDriver(spec.Power with { On = ["sh", "-c", "echo 'relay 3: no such outlet' >&2; exit 4"] }, ws.Logger);
        var said = await Assert.ThrowsAsync<InfrastructureException>(() => talking.OnAsync(ct));
        Assert.That(said!.Message, Does.Contain("exit code 4").And.Contain("relay 3: no such outlet").And.Not.Contain("\n"));
        var missing = new CommandPowerDriver(spec.Power with { On = ["/nonexistent/relay-tool"] }, ws.Logger);
        Assert.That((await Assert.ThrowsAsync<InfrastructureException>(() => missing.OnAsync(ct)))!.Message, Does.Contain("could not start"));
    }

    [Test, CancelAfter(60_000)]
    public async Task PDUDaemon_http_api_drives_an_outlet(CancellationToken ct)
    {
        using var ws = new Workspace();
        var outlet = Path.Combine(ws.Dir, "outlet.log");
        var port = PeerProcess.FreePort();
        var conf = ws.Write("pdudaemon.conf", $$"""
            {
              "daemon": { "hostname": "127.0.0.1", "port": {{port}}, "logging_level": "DEBUG", "listener": "http" },
              "pdus": { "hil-pdu": { "driver": "localcmdline", "cmd_on": "echo '%s on' >> {{outlet}}", "cmd_off": "echo '%s off' >> {{outlet}}" } }
            }
            """);
        using var daemon = PeerProcess.Start(["pdudaemon", "--conf", conf, "--logfile", Path.Combine(ws.Dir, "pdudaemon.log"), "--loglevel", "DEBUG"], Path.Combine(ws.Dir, "pdudaemon.out"));
        await PeerProcess.WaitForPortAsync(port, TimeSpan.FromSeconds(20), () => !daemon.HasExited);
        var spec = ws.Board($"""
            name: pdu-board
            console: {"{"} device: /dev/ttyHIL-none {"}"}
            power:
              driver: pdudaemon
              url: http://127.0.0.1:{port}
              hostname: hil-pdu
              port: "3"
              off_time: 1s
            """);
        var power = PowerDrivers.Create(new PowerContext(spec, spec.Power, ws.Logger));
        Assert.That(power, Is.TypeOf<PduDaemonPowerDriver>());
        await power.OnAsync(ct);
        await WaitForLinesAsync(outlet, ["3 on"], ct);
        await power.OffAsync(ct);
        await WaitForLinesAsync(outlet, ["3 on", "3 off"], ct);
        await power.CycleAsync(ct);
        await WaitForLinesAsync(outlet, ["3 on", "3 off", "3 off", "3 on"], ct);
        // An unknown PDU is refused by PDUDaemon; the driver says so as an infrastructure failure.
        var wrong = new PduDaemonPowerDriver(spec.Power with { PduHostname = "no-such-pdu" }, ws.Logger);
        Assert.That(wrong.RequestUri("on", null).Query, Does.Contain("hostname=no-such-pdu&port=3"));
        var down = new PduDaemonPowerDriver(spec.Power with { Url = $"http://127.0.0.1:{PeerProcess.FreePort()}" }, ws.Logger);
        Assert.That((await Assert.ThrowsAsync<InfrastructureException>(() => down.OnAsync(ct)))!.Message, Does.Contain("unreachable"));
    }

    private static async Task WaitForLinesAsync(string file, string[] expected, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        string[] lines = [];
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            lines = File.Exists(file) ? await File.ReadAllLinesAsync(file, ct) : [];
            if (lines.SequenceEqual(expected)) return;
            await Task.Delay(100, ct);
        }
        Assert.That(lines, Is.EqualTo(expected));
    }

    [Test]
    public async Task Only_infrastructure_failures_are_retried()
    {
        var calls = 0;
        var result = await FailureClassifier.RetryInfrastructureAsync(attempt =>
        {
            calls++;
            if (attempt < 3) throw new LinkLostException("console gone");
            return Task.FromResult("ok");
        }, attempts: 5);
        Assert.That((result, calls), Is.EqualTo(("ok", 3)));
        calls = 0;
        await Assert.ThrowsAsync<ProductFailureException>(() => FailureClassifier.RetryInfrastructureAsync<string>(_ =>
        {
            calls++;
            throw new ProductFailureException("panic");
        }, attempts: 5));
        Assert.That(calls, Is.EqualTo(1));
        Assert.That(FailureClassifier.Classify(new NullReferenceException()).Class, Is.EqualTo(FailureClass.Test));
        Assert.That(FailureClassifier.Classify(new System.Net.Sockets.SocketException()).Class, Is.EqualTo(FailureClass.Infrastructure));
        _ = Log.Logger;
    }
}
