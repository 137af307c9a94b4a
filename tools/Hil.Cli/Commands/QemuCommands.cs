using System.CommandLine;
using Hil.Kernel;
using Hil.Qemu.Launch;
using Hil.Qemu.Provisioning;
using Serilog;
using Spectre.Console;

namespace Hil.Cli.Commands;

/// <summary>
/// `hil provision` — builds the QEMU OP-TEE boards from Debian packages into the cache;
/// `hil qemu boot` — starts one for manual use (console on the terminal, SSH forwarded).
/// </summary>
public static class QemuCommands
{
    private const string AllBoards = "all";

    public static IEnumerable<Command> Build() => [Provision(), Qemu()];

    private static Option<string> BoardOption(bool allowAll) => new("--board", "-b")
    {
        Description = allowAll
            ? $"board to provision: {string.Join(", ", BoardRecipe.All.Select(r => r.Board))} or {AllBoards}"
            : $"board: {string.Join(", ", BoardRecipe.All.Select(r => r.Board))}",
        DefaultValueFactory = _ => allowAll ? AllBoards : BoardRecipe.Mainline.Board,
    };

    private static Command Provision()
    {
        var board = BoardOption(allowAll: true);
        var force = new Option<bool>("--force") { Description = "rebuild everything even if the cache has it (downloads stay verified)" };
        var refresh = new Option<bool>("--refresh") { Description = "ask the mirror for new package versions even when an image exists" };
        var cmd = new Command("provision", "Provision the QEMU OP-TEE boards from Debian packages (cached; a second run does nothing)")
            { board, force, refresh };
        cmd.SetAction(async (pr, ct) =>
        {
            if (!TryBoards(pr.GetValue(board)!, out var recipes)) return CliRunner.UsageError;
            var cache = HilCache.Default();
            return await Guard(async () =>
            {
                using var log = Logging.ForProvisioning(cache);
                var progress = ProvisionProgress.For(log);
                var options = new ProvisionOptions { Force = pr.GetValue(force), Refresh = pr.GetValue(refresh) };
                var result = await new QemuProvisioner(cache, options, log, progress).ProvisionAsync(recipes, ct);
                PrintSummary(cache, result);
                return 0;
            });
        });
        return cmd;
    }

    private static Command Qemu()
    {
        var board = BoardOption(allowAll: false);
        var boot = new Command("boot", "Boot a provisioned QEMU board with this terminal on its console (line mode; Ctrl-C or end of input powers it off)") { board };
        boot.SetAction(async (pr, ct) =>
        {
            if (!TryBoards(pr.GetValue(board)!, out var recipes) || recipes.Count != 1)
            {
                if (recipes.Count > 1) Console.Error.WriteLine("hil qemu boot: give one board");
                return CliRunner.UsageError;
            }
            var cache = HilCache.Default();
            return await Guard(async () =>
            {
                var image = QemuProvisioner.Current(cache, recipes[0])
                    ?? throw new ProvisioningException($"{recipes[0].Board} is not provisioned; run: hil provision --board {recipes[0].Board}");
                await using var qemu = await QemuInstance.StartAsync(QemuLaunchOptions.For(image), ct);
                Console.Error.WriteLine($"hil: {image.Board} started (pid {qemu.ProcessId}); console {qemu.ConsoleSocketPath}");
                Console.Error.WriteLine($"hil: ssh -i {image.Ssh.PrivateKeyPath} -p {qemu.SshPort} {image.Ssh.User}@127.0.0.1 " +
                                        $"(host key {image.Ssh.HostKeyFingerprint}); secure log {qemu.SecureLogPath}");
                Console.Error.WriteLine("hil: interrupt U-Boot and run: " + string.Join("; ", image.BootloaderCommands));
                await ConsoleBridge.RunAsync(qemu, ct);
                return 0;
            });
        });
        var qemu = new Command("qemu", "The QEMU OP-TEE reference board") { boot };
        return qemu;
    }

    private static bool TryBoards(string name, out IReadOnlyList<BoardRecipe> recipes)
    {
        if (name == AllBoards) { recipes = BoardRecipe.All; return true; }
        var r = BoardRecipe.All.FirstOrDefault(x => x.Board == name);
        if (r is null)
        {
            Console.Error.WriteLine($"hil: --board: unknown board '{name}'; known: {string.Join(", ", BoardRecipe.All.Select(x => x.Board))}, {AllBoards}");
            recipes = [];
            return false;
        }
        recipes = [r];
        return true;
    }

    /// <summary>Turns provisioning and tool failures into one clear message (the log file keeps the detail).</summary>
    private static async Task<int> Guard(Func<Task<int>> body)
    {
        try { return await body(); }
        catch (ProvisioningException ex) { Console.Error.WriteLine($"hil: {ex.Message}"); return 1; }
        catch (ExternalToolException ex) { Console.Error.WriteLine($"hil: {ex.Message}"); return 1; }
        catch (QemuLaunchException ex) { Console.Error.WriteLine($"hil: {ex.Message}"); return 1; }
    }

    private static void PrintSummary(HilCache cache, ProvisionResult result)
    {
        // Piped output (CI logs) has no terminal width; do not fold the tables into 80 columns.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;
        foreach (var image in result.Images)
        {
            var m = Manifest.Load(image.Directory);
            var t = new Table().Title($"[bold]{Markup.Escape(image.Board)}[/] — kernel {Markup.Escape(image.KernelRelease)} ({Markup.Escape(image.KernelPolicy)}), OP-TEE {Markup.Escape(image.OpteeVersion)}");
            t.AddColumns("package", "version", "arch", "suite", "role", "sha256");
            foreach (var p in m.Packages)
                t.AddRow(Markup.Escape(p.Package), Markup.Escape(p.Version), p.Architecture, Markup.Escape(p.Suite), Markup.Escape(p.Role), p.Sha256[..16] + "…");
            AnsiConsole.Write(t);
            AnsiConsole.WriteLine($"  image:     {image.Directory}");
            AnsiConsole.WriteLine($"  manifest:  {image.ManifestPath} (table: {image.ManifestTablePath})");
            AnsiConsole.WriteLine($"  ssh:       user {image.Ssh.User}, key {image.Ssh.PrivateKeyPath}, host key {image.Ssh.HostKeyFingerprint}");
            AnsiConsole.WriteLine($"  kit:       {image.ModuleKitDirectory}");
            AnsiConsole.WriteLine($"  libteec:   {image.Libteec.Directory}");
        }
        var steps = new Table().Title("[bold]steps[/]");
        steps.AddColumns("board", "step", "kind", "seconds");
        foreach (var s in result.Steps)
            steps.AddRow(Markup.Escape(s.Board), Markup.Escape(s.Name), s.Kind.ToString(), s.Duration.TotalSeconds.ToString("0.0"));
        AnsiConsole.Write(steps);
        AnsiConsole.WriteLine($"provisioning {(result.DidWork ? "cold" : "warm (cache reused, no network, no build)")}: {result.Elapsed.TotalSeconds:0.0} s; cache {cache.Root}");
    }
}

/// <summary>Log configuration for provisioning: a file in the cache always, the console only when no live display draws there.</summary>
internal static class Logging
{
    public static Serilog.Core.Logger ForProvisioning(HilCache cache)
    {
        Directory.CreateDirectory(cache.Root);
        var cfg = new LoggerConfiguration().MinimumLevel.Information()
            .WriteTo.File(Path.Combine(cache.Root, "provision.log"), outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}{Exception}");
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            cfg = cfg.WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss} {Message:lj}{NewLine}", standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose);
        return cfg.CreateLogger();
    }
}

/// <summary>Joins the terminal to a QEMU console socket for manual use (line by line; not a board-access layer).</summary>
internal static class ConsoleBridge
{
    public static async Task RunAsync(QemuInstance qemu, CancellationToken ct)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(qemu.ConsoleSocketPath), ct);
        await using var net = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var stdout = Console.OpenStandardOutput();
        var toTerminal = net.CopyToAsync(stdout, stop.Token);
        var fromTerminal = Task.Run(async () =>
        {
            var stdin = Console.OpenStandardInput();
            var buf = new byte[1024];
            int n;
            while ((n = await stdin.ReadAsync(buf, stop.Token)) > 0)
            {
                // The guest's tty wants carriage returns, as a serial terminal sends them.
                var data = buf[..n].Select(b => b == (byte)'\n' ? (byte)'\r' : b).ToArray();
                await net.WriteAsync(data, stop.Token);
            }
        }, stop.Token);
        try { await Task.WhenAny(toTerminal, fromTerminal, qemu.Exited, Task.Delay(Timeout.Infinite, ct)); }
        finally { await stop.CancelAsync(); }
    }
}
