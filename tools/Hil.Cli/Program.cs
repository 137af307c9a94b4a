using Hil.Cli;

return CliRunner.Run(CliRoot.Build(), args);
