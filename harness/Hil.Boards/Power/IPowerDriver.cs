using Hil.Boards.BoardFiles;
using Serilog;

namespace Hil.Boards.Power;

/// <summary>
/// Switches a board's power. Implemented here for none/manual, external commands and PDUDaemon;
/// other assemblies add their own (the QEMU board registers "qemu", whose "power" is the QEMU process)
/// through <see cref="PowerDrivers.Register"/>.
/// </summary>
public interface IPowerDriver
{
    /// <summary>The driver name as written in board files.</summary>
    string Name { get; }

    Task OnAsync(CancellationToken ct);
    Task OffAsync(CancellationToken ct);

    /// <summary>Off, wait, on (drivers with a native cycle use it).</summary>
    Task CycleAsync(CancellationToken ct);

    /// <summary>True/false when the driver can tell whether the board is powered/alive; null when it cannot.</summary>
    Task<bool?> IsAliveAsync(CancellationToken ct);

    /// <summary>False for drivers that cannot switch anything (none/manual): the harness then never expects a reboot from them.</summary>
    bool CanSwitch { get; }
}

/// <summary>What a driver factory gets: the board's power entry and a logger.</summary>
public sealed record PowerContext(BoardSpec Board, PowerSpec Spec, ILogger Logger);

/// <summary>The registry of power drivers by board-file name.</summary>
public static class PowerDrivers
{
    private static readonly Dictionary<string, Func<PowerContext, IPowerDriver>> Factories = new()
    {
        ["none"] = c => new ManualPowerDriver("none", c.Logger),
        ["manual"] = c => new ManualPowerDriver("manual", c.Logger),
        ["command"] = c => new CommandPowerDriver(c.Spec, c.Logger),
        ["pdudaemon"] = c => new PduDaemonPowerDriver(c.Spec, c.Logger),
    };

    private static readonly Lock Gate = new();

    /// <summary>Names registered beyond the built-in ones (board files may use them).</summary>
    public static IReadOnlyList<string> Registered
    {
        get { lock (Gate) return Factories.Keys.Where(k => k is not ("none" or "manual" or "command" or "pdudaemon")).ToList(); }
    }

    /// <summary>Adds a driver (e.g. "qemu"); call it before loading board files that name it.</summary>
    public static void Register(string name, Func<PowerContext, IPowerDriver> factory)
    {
        lock (Gate) Factories[name] = factory;
    }

    public static IPowerDriver Create(PowerContext context)
    {
        lock (Gate)
        {
            if (Factories.TryGetValue(context.Spec.Driver, out var f)) return f(context);
        }
        throw new Failures.TestErrorException($"{context.Board.SourceFile}: power.driver: unknown power driver '{context.Spec.Driver}' (not registered)");
    }
}

/// <summary>No switchable power: someone (or something outside the harness) powers the board.</summary>
public sealed class ManualPowerDriver(string name, ILogger logger) : IPowerDriver
{
    public string Name => name;
    public bool CanSwitch => false;

    public Task OnAsync(CancellationToken ct)
    {
        logger.Information("power ({Driver}): the board must be powered on by hand", name);
        return Task.CompletedTask;
    }

    public Task OffAsync(CancellationToken ct)
    {
        logger.Information("power ({Driver}): the board must be powered off by hand", name);
        return Task.CompletedTask;
    }

    public Task CycleAsync(CancellationToken ct)
    {
        logger.Information("power ({Driver}): power-cycle the board by hand", name);
        return Task.CompletedTask;
    }

    public Task<bool?> IsAliveAsync(CancellationToken ct) => Task.FromResult<bool?>(null);
}
