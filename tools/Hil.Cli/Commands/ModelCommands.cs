using System.CommandLine;

namespace Hil.Cli.Commands;

/// <summary>`hil model simulate|explore|check-trace` — the reference model on files.</summary>
public static class ModelCommands
{
    public static Command Build()
    {
        var model = new Command("model", "The reference model of the OP-TEE call queue");
        return model;
    }
}
