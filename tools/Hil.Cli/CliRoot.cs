using System.CommandLine;
using Hil.Cli.Commands;

namespace Hil.Cli;

/// <summary>The `hil` command tree: one place, used by the program and by the tests that run it in process.</summary>
public static class CliRoot
{
    // Each command group lives in Commands/<Group>Commands.cs and exposes Build(); register it here.
    public static RootCommand Build()
    {
        var root = new RootCommand("hil — hardware-in-the-loop harness for Linux + OP-TEE boards");
        root.Subcommands.Add(ModelCommands.Build());
        root.Subcommands.Add(BenchCommands.Build());
        root.Subcommands.Add(BoardCommands.Build());
        foreach (var c in QemuCommands.Build()) root.Subcommands.Add(c);
        root.Subcommands.Add(RunCommands.Build());
        root.Subcommands.Add(LeaseCommands.Build());
        root.Subcommands.Add(PatchCommands.Build());
        return root;
    }
}
