using System.Collections.Concurrent;
using System.Diagnostics;
using Hil.Boards.BoardFiles;

namespace Hil.Boards.Secrets;

/// <summary>
/// Keeps secret environment variables out of child processes that do not need them. Board files name
/// secrets as <c>{ env: NAME }</c>; the variable then holds a password in this process's environment,
/// and every child (a power command, QEMU, a build tool) would inherit it and could leak it (crash
/// dumps, /proc/PID/environ, a tool that logs its environment). Each variable a loaded board file
/// names is registered here; <see cref="Scrub"/> removes them from a <see cref="ProcessStartInfo"/>
/// before it starts. Call it at every place a process is started (after setting its environment).
/// </summary>
public static class ChildEnvironment
{
    private static readonly ConcurrentDictionary<string, byte> Names = new(StringComparer.Ordinal);

    /// <summary>Marks <paramref name="name"/> as holding a secret (the board-file loader does this for every { env: NAME }).</summary>
    public static void RegisterSecretVariable(string name)
    {
        if (name.Length > 0) Names.TryAdd(name, 0);
    }

    /// <summary>The secret variables registered so far in this process.</summary>
    public static IReadOnlyCollection<string> SecretVariables => Names.Keys.ToList();

    /// <summary>The secret variables a board file names (a child that opens this board, e.g. a test run, needs them).</summary>
    public static IReadOnlyList<string> VariablesOf(BoardSpec spec) =>
        new[] { spec.Ssh?.Password, spec.Ssh?.KeyPassphrase, spec.Login.Password }
            .Select(s => s?.EnvVar).OfType<string>().Distinct().ToList();

    /// <summary>
    /// Removes every registered secret variable from <paramref name="psi"/>'s environment, except those
    /// in <paramref name="keep"/> (a child that needs them). Returns <paramref name="psi"/>.
    /// </summary>
    public static ProcessStartInfo Scrub(ProcessStartInfo psi, IEnumerable<string>? keep = null)
    {
        // With UseShellExecute the environment is not applied: the child would get ours, secrets included.
        if (psi.UseShellExecute)
            throw new InvalidOperationException("ChildEnvironment.Scrub needs UseShellExecute = false (else the environment is inherited as is)");
        var kept = keep is null ? null : new HashSet<string>(keep, StringComparer.Ordinal);
        foreach (var name in Names.Keys)
            if (kept?.Contains(name) != true) psi.Environment.Remove(name);
        return psi;
    }
}
