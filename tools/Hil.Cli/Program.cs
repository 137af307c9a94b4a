using System.CommandLine;
using Hil.Cli;
using Hil.Cli.Commands;

// Each command group lives in Commands/<Group>Commands.cs and exposes Build(); register it here.
var root = new RootCommand("hil — hardware-in-the-loop harness for Linux + OP-TEE boards");
root.Subcommands.Add(ModelCommands.Build());
root.Subcommands.Add(BenchCommands.Build());
root.Subcommands.Add(BoardCommands.Build());
foreach (var c in QemuCommands.Build()) root.Subcommands.Add(c);
root.Subcommands.Add(RunCommands.Build());
root.Subcommands.Add(PatchCommands.Build());
return CliRunner.Run(root, args);
