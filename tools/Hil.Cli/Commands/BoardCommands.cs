using System.CommandLine;
using Hil.Boards.BoardFiles;

namespace Hil.Cli.Commands;

/// <summary>`hil board check FILE...` — validates board files without touching any board.</summary>
public static class BoardCommands
{
    public static Command Build()
    {
        // A board file's mistakes become one line each (file:line:column: field: message), exit code 2.
        UserErrors.Register<BoardFileException>(e => e.Message.Replace(Environment.NewLine, Environment.NewLine + "hil: "));
        var files = new Argument<FileInfo[]>("FILE") { Description = "board files (boards/*.yaml)", Arity = ArgumentArity.OneOrMore };
        var check = new Command("check", "Validate board files: every error with file, line and field; secrets are only checked for presence") { files };
        check.SetAction(pr =>
        {
            // Board files may name the QEMU board's power driver; registering it starts nothing.
            Hil.Qemu.Board.QemuBoards.Register();
            var failed = 0;
            foreach (var f in pr.GetValue(files) ?? [])
            {
                try
                {
                    var spec = BoardFileLoader.Load(f.FullName);
                    Console.WriteLine($"ok {f.FullName}: {Describe(spec)}");
                }
                catch (BoardFileException ex)
                {
                    failed++;
                    foreach (var e in ex.Errors) Console.Error.WriteLine($"hil: {e}");
                }
            }
            return failed == 0 ? 0 : CliRunner.UsageError;
        });
        var board = new Command("board", "Board files and board sessions") { check };
        return board;
    }

    private static string Describe(BoardSpec s)
    {
        var links = new List<string>();
        if (s.Console is { } c) links.Add($"console {c}");
        if (s.SecureConsole is { } sc) links.Add($"secure console {sc}");
        if (s.Ssh is { } ssh) links.Add($"ssh {ssh.User}@{ssh.Host}:{ssh.Port} ({(ssh.HostKeys.Count > 0 ? "pinned host key" : "known_hosts")})");
        var stages = new[] { ("firmware", s.Boot.Firmware), ("bootloader", s.Boot.Bootloader), ("kernel", s.Boot.Kernel) }
            .Where(x => x.Item2 is not null).Select(x => x.Item1).ToList();
        return $"{s.Name}: {string.Join(", ", links)}; power {s.Power.Driver}; boot stages {(stages.Count == 0 ? "none" : string.Join(" → ", stages))}; "
               + $"login {(s.Login.User is null ? "none (auto-login console)" : s.Login.User)}";
    }
}
