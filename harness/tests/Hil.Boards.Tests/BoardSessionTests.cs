using Hil.Boards.BoardFiles;
using Hil.Boards.Boot;
using Hil.Boards.Failures;
using Hil.Boards.Power;
using Hil.Boards.Watch;
using Hil.Peers;

namespace Hil.Boards.Tests;

/// <summary>The board session: console watching, boot stages with a bootloader stop, unix-socket consoles.</summary>
[TestFixture, Category("loopback")]
public sealed class BoardSessionTests : BoardTest
{
    [Test, CancelAfter(60_000)]
    public async Task A_kernel_panic_on_the_console_fails_the_command_but_a_quoted_one_in_output_does_not(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash);
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(peer.Device, peer.PasswordFile)));
        await board.EnsureShellAsync(ct);
        // A log that mentions a panic is the command's output, not the board's.
        var quoted = await board.Shell.RunAsync("printf 'old log: Kernel panic - not syncing: VFS\\nInternal error: Oops: 96000004\\n'", null, ct);
        Assert.That(quoted.Output, Does.Contain("Kernel panic"));
        Assert.That(board.Watcher.Since(0), Is.Empty);
        // Written to the console itself (as the kernel does), it fails the command with the evidence.
        var ex = await Assert.ThrowsAsync<ConsoleEventException>(() =>
            board.Shell.RunAsync("printf '[   42.123456] Kernel panic - not syncing: hil test\\r\\n' > /dev/tty; echo done", null, ct));
        Assert.That(ex!.Class, Is.EqualTo(FailureClass.Product));
        Assert.That(ex.Evidence, Has.Some.Contains("Kernel panic - not syncing: hil test"));
        // A warning does not stop the command; the test that saw it fails when it completes.
        var scope = board.BeginTest("warning-test");
        var r = await board.Shell.RunAsync("printf '[   43.000000] WARNING: CPU: 1 PID: 77 at drivers/tee/optee/call.c:123 optee_do_call+0x1/0x2\\r\\n' > /dev/tty; echo still", null, ct);
        Assert.That(r.Output, Is.EqualTo("still\n"));
        var w = Assert.Throws<ConsoleEventException>(scope.Complete);
        Assert.That(w!.Message, Does.Contain("KernelWarning"));
        Assert.That(System.Text.Encoding.UTF8.GetString(scope.ConsoleSlice()), Does.Contain("WARNING: CPU: 1"));
        // A firmware banner while the board is up means it reset under the test.
        var reset = await Assert.ThrowsAsync<ConsoleEventException>(() =>
            board.Shell.RunAsync("printf 'U-Boot SPL 2023.01 (Jan 01 2024)\\r\\n' > /dev/tty", null, ct));
        Assert.That(reset!.Message, Does.Contain("UnexpectedReset"));
    }

    [Test, CancelAfter(60_000)]
    public async Task The_secure_console_file_is_followed_and_an_OP_TEE_panic_fails_the_test(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, password: null);
        var secure = Path.Combine(ws.Dir, "secure.log");
        await using var board = await ws.OpenAsync(ws.Board($"""
            name: secure-test
            console: {"{"} device: {peer.Device} {"}"}
            secure_console: {"{"} device: "file:{secure}" {"}"}
            """));
        // The file appears only after the session opened, and grows in pieces, like QEMU's -serial file:.
        await File.WriteAllTextAsync(secure, "I/TC: OP-TEE version: 4.5.0\nD/TC:0 0 call_initcalls:40 level 1\n", ct);
        await board.EnsureShellAsync(ct);
        var scope = board.BeginTest("ta-test");
        await File.AppendAllTextAsync(secure, "E/TC:1 0 Panic at core/kernel/thread.c:912 <thread_state_free>\n", ct);
        await Eventually.EqualAsync(() => scope.Events.Count, () => 1, ct);
        var ex = Assert.Throws<ConsoleEventException>(scope.Complete);
        Assert.That(ex!.Message, Does.Contain("OpteePanic").And.Contain("secure-console"));
        var logged = await File.ReadAllTextAsync(Path.Combine(ws.Dir, "logs", "secure-console.raw"), ct);
        Assert.That(logged, Is.EqualTo(await File.ReadAllTextAsync(secure, ct)));
    }

    [Test, CancelAfter(90_000)]
    public async Task Boot_stages_with_a_bootloader_stop_then_login_through_the_power_hook(CancellationToken ct)
    {
        using var ws = new Workspace();
        var record = Path.Combine(ws.Dir, "uboot.txt");
        // A scripted bootloader in front of the real login shell: banners, an autoboot countdown that
        // must be interrupted, a "=> " prompt that records the commands typed, then kernel lines.
        var bootScript = $$"""
            printf 'U-Boot SPL 2023.01 (hil peer)\r\nNOTICE:  Booting Trusted Firmware\r\n'
            printf 'U-Boot 2023.01 (hil peer)\r\n\r\nDRAM:  1 GiB\r\n'
            stopped=
            for i in 3 2 1; do printf '\rHit any key to stop autoboot: %2d ' $i; if IFS= read -r -s -n 1 -t 1 k; then stopped=1; break; fi; done
            if [ -n "$stopped" ]; then
              printf '\r\n=> '
              while IFS= read -r line; do
                line="${line#"${line%%[! ]*}"}"
                [ -n "$line" ] && echo "$line" >> '{{record}}'
                [ "$line" = boot ] && break
                printf '=> '
              done
              printf 'Starting kernel ...\r\n\r\n'
            else
              echo autoboot >> '{{record}}'
            fi
            printf '[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]\r\n[    0.000000] Linux version 6.12.0-hil\r\n'
            """;
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, bootScript: bootScript);
        peer.Unplug(); // the board starts powered off
        var power = new PeerPower(peer);
        var spec = ws.Board($$"""
            name: scripted-uboot
            console: { device: {{peer.Device}}, reconnect_timeout: 20s }
            boot:
              firmware: { expect: 'U-Boot SPL 20\d\d', timeout: 15s }
              bootloader:
                expect: 'Hit any key to stop autoboot'
                timeout: 15s
                interrupt:
                  send: ' '
                  prompt: '=> '
                  commands: [ "setenv kernel_addr_r 0x46000000", "setenv ramdisk_addr_r 0x50000000", boot ]
              kernel: { expect: 'Booting Linux on physical CPU', timeout: 15s }
              login_timeout: 30s
            login:
              user: hiltest
              password: { file: {{peer.PasswordFile}} }
              timeout: 3s
            """);
        await using var board = await OpenWithPowerAsync(ws, spec, power, ct);
        var stages = RecordStages(board);
        // Nothing answers on the console, so the session powers the board up and walks the stages.
        await board.EnsureShellAsync(ct);
        Assert.That((await board.Shell.RunAsync("echo up", null, ct)).Output, Is.EqualTo("up\n"));
        Assert.That(stages, Is.EqualTo(new[] { BootStage.Off, BootStage.Firmware, BootStage.Bootloader, BootStage.Kernel, BootStage.Login, BootStage.Shell }));
        Assert.That(await File.ReadAllLinesAsync(record, ct), Is.EqualTo(new[] { "setenv kernel_addr_r 0x46000000", "setenv ramdisk_addr_r 0x50000000", "boot" }));
        Assert.That(power.Cycles, Is.EqualTo(1));
        // The banners of a deliberate boot are not an unexpected reset.
        Assert.That(board.Watcher.Since(0).Where(e => e.Kind == ConsoleEventKind.UnexpectedReset), Is.Empty);
    }

    [Test, CancelAfter(60_000)]
    public async Task A_stage_banner_in_the_same_burst_as_the_previous_one_is_not_skipped(CancellationToken ct)
    {
        // A fast board (or a slow host) delivers the firmware banner and the autoboot prompt in one
        // read: matching the firmware stage must not consume the bootloader's prompt.
        using var ws = new Workspace();
        var bootScript = """
            printf 'NOTICE:  Booting Trusted Firmware\r\nU-Boot 2025.01\r\nHit any key to stop autoboot:  1 '
            if IFS= read -r -s -n 1 -t 5 k; then printf '\r\n=> '; IFS= read -r line; fi
            printf 'Starting kernel ...\r\n[    0.000000] Booting Linux on physical CPU 0x0\r\n'
            """;
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, password: null, bootScript: bootScript);
        peer.Unplug();
        var spec = ws.Board($$"""
            name: one-burst
            console: { device: {{peer.Device}}, reconnect_timeout: 20s }
            boot:
              firmware: { expect: 'Booting Trusted Firmware', timeout: 15s }
              bootloader:
                expect: 'Hit any key to stop autoboot'
                timeout: 4s
                interrupt: { send: ' ', prompt: '=> ', commands: [ boot ] }
              kernel: { expect: 'Booting Linux on physical CPU', timeout: 15s }
            """);
        await using var board = await OpenWithPowerAsync(ws, spec, new PeerPower(peer), ct);
        var stages = RecordStages(board);
        await board.BootAsync(ct);
        Assert.That(stages, Is.EqualTo(new[] { BootStage.Off, BootStage.Firmware, BootStage.Bootloader, BootStage.Kernel, BootStage.Login, BootStage.Shell }));
    }

    [Test, CancelAfter(60_000)]
    public async Task A_stage_banner_that_arrives_in_pieces_after_many_lines_is_found(CancellationToken ct)
    {
        // Stages scan only from the start of the last unfinished line: a banner typed out in pieces,
        // with an escape sequence in the middle, after lines that were already scanned, must still match.
        using var ws = new Workspace();
        var bootScript = """
            i=0; while [ $i -lt 200 ]; do printf '[    0.%06d] noise line %d\r\n' $i $i; i=$((i+1)); done
            printf '[    1.000000] Boo'; sleep 0.2; printf 'ting Li\033[0mnux on phys'; sleep 0.2; printf 'ical CPU 0x0\r\n'
            """;
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, password: null, bootScript: bootScript);
        peer.Unplug();
        var spec = ws.Board($$"""
            name: pieces
            console: { device: {{peer.Device}}, reconnect_timeout: 20s }
            boot:
              kernel: { expect: 'Booting Linux on physical CPU', timeout: 15s }
            """);
        await using var board = await OpenWithPowerAsync(ws, spec, new PeerPower(peer), ct);
        var stages = RecordStages(board);
        await board.BootAsync(ct);
        Assert.That(stages, Is.EqualTo(new[] { BootStage.Off, BootStage.Kernel, BootStage.Login, BootStage.Shell }));
    }

    [Test, CancelAfter(60_000)]
    public async Task A_boot_stage_that_never_shows_fails_as_product_when_the_console_talks(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, password: null, bootScript: "printf 'U-Boot 2023.01\\r\\nbad image\\r\\n'");
        peer.Unplug();
        var spec = ws.Board($"""
            name: no-kernel
            console: {"{"} device: {peer.Device}, reconnect_timeout: 10s {"}"}
            boot:
              kernel: {"{"} expect: 'Booting Linux', timeout: 2s {"}"}
            """);
        await using var board = await OpenWithPowerAsync(ws, spec, new PeerPower(peer), ct);
        // The console talked (a bootloader banner) but no kernel came: the board's failure, and the session is done.
        var ex = await Assert.ThrowsAsync<ProductFailureException>(() => board.BootAsync(ct));
        Assert.That(ex!.Evidence, Has.Some.Contains("bad image"));
        Assert.That(board.IsBroken, Is.True);
        var next = await Assert.ThrowsAsync<BoardBrokenException>(() => board.EnsureShellAsync(ct));
        Assert.That(next!.Class, Is.EqualTo(FailureClass.Infrastructure));
    }

    [Test, CancelAfter(60_000)]
    public async Task A_unix_socket_console_like_qemu_serial_unix_with_reconnect(CancellationToken ct)
    {
        using var ws = new Workspace();
        await using var peer = await ConsolePeer.StartAsync(PeerShell.Dash, password: null, transport: PeerTransport.Unix);
        await using var board = await ws.OpenAsync(ws.Board(Yaml.ConsoleBoard(peer.Device, passwordFile: null)));
        await board.EnsureShellAsync(ct);
        Assert.That((await board.Shell.RunAsync("echo via-unix", null, ct)).Output, Is.EqualTo("via-unix\n"));
        peer.Unplug();
        await peer.PlugInAsync();
        Assert.That((await board.Shell.RunAsync("echo again", null, ct)).Output, Is.EqualTo("again\n"));
        Assert.That(board.Console.Reconnects, Is.EqualTo(1));
    }

    private static Task<Board> OpenWithPowerAsync(Workspace ws, BoardSpec spec, IPowerDriver power, CancellationToken ct) =>
        Board.OpenAsync(spec, new BoardOptions { LogDirectory = Path.Combine(ws.Dir, "logs"), Logger = ws.Logger, Power = power }, ct);

    /// <summary>The boot stages the board reports, in order, from now on.</summary>
    private static List<BootStage> RecordStages(Board board)
    {
        var stages = new List<BootStage>();
        board.Boot!.StageReached += stages.Add;
        return stages;
    }

    /// <summary>The power hook as the QEMU board uses it: here "power" is the console peer process.</summary>
    private sealed class PeerPower(ConsolePeer peer) : IPowerDriver
    {
        public int Cycles;
        public string Name => "peer";
        public bool CanSwitch => true;
        public Task OnAsync(CancellationToken ct) => peer.PlugInAsync();

        public Task OffAsync(CancellationToken ct)
        {
            peer.Unplug();
            return Task.CompletedTask;
        }

        public async Task CycleAsync(CancellationToken ct)
        {
            Cycles++;
            await OffAsync(ct);
            await OnAsync(ct);
        }

        public Task<bool?> IsAliveAsync(CancellationToken ct) => Task.FromResult<bool?>(true);
    }
}
