using System.Globalization;

namespace Hil.Boards.Leases;

/// <summary>
/// Who holds a lease: a user, on a host (since a given boot), in a process (since a given start).
/// The boot id and the process start time are what let another process on the same host prove a
/// holder dead: a pid alone may have been reused by an unrelated process, and a reboot ends every
/// holder without deleting its file.
/// </summary>
public sealed record LeaseHolder(string Owner, string Host, string BootId, int Pid, long ProcessStart)
{
    /// <summary>"alice@lab1 pid 4242": how messages and log lines name a holder.</summary>
    public override string ToString() => $"{Owner}@{Host} pid {Pid.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>This process, as <paramref name="owner"/>.</summary>
    public static LeaseHolder Current(string owner) =>
        new(owner, Environment.MachineName, ProcessTable.BootId() ?? "", Environment.ProcessId, ProcessTable.StartTicks(Environment.ProcessId) ?? 0);

    /// <summary>The user a lease is taken for by default: the one behind sudo, else the account running.</summary>
    public static string DefaultOwner()
    {
        var sudo = Environment.GetEnvironmentVariable("SUDO_USER");
        return string.IsNullOrWhiteSpace(sudo) ? Environment.UserName : sudo;
    }

    /// <summary>
    /// Null while this holder may be alive; else why it is certainly gone. Only decidable on the same
    /// host: a holder elsewhere is trusted until its lease expires.
    /// </summary>
    public string? WhyDead()
    {
        if (Host != Environment.MachineName) return null;
        var bootId = ProcessTable.BootId();
        if (bootId is null || BootId.Length == 0) return null;
        if (bootId != BootId) return $"host {Host} has rebooted since (boot id {BootId}, now {bootId})";
        var start = ProcessTable.StartTicks(Pid);
        if (start is null) return $"pid {Pid} is no longer running";
        // 0: the holder could not read its own start, so a pid reuse cannot be told from the holder.
        if (ProcessStart != 0 && start != ProcessStart) return $"pid {Pid} is now another process (started at tick {start}, the holder at tick {ProcessStart})";
        return null;
    }
}

/// <summary>What /proc says about processes and the boot (Linux); null where it cannot tell.</summary>
internal static class ProcessTable
{
    /// <summary>The kernel's random id of this boot: the same host after a reboot is a different world of pids.</summary>
    public static string? BootId()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or null when no
    /// such process exists. Unlike a wall-clock start time it never shifts when the clock is set.
    /// </summary>
    public static long? StartTicks(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        // The command name (field 2) is in parentheses and may itself hold spaces or ')': fields resume after the last ')'.
        var close = stat.LastIndexOf(')');
        if (close < 0) return null;
        var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // A zombie (killed, not yet reaped by its parent) has ended: it will never renew or release.
        if (fields.Length > 0 && fields[0] is "Z" or "X") return null;
        // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
        return fields.Length > 19 && long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks) ? ticks : null;
    }
}
