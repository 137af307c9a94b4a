using Hil.Boards.BoardFiles;

namespace Hil.Qemu.Board;

/// <summary>
/// Which boards are taken under an exclusive lease (Hil.Boards.Leases), and on what terms. The one
/// rule lives here because it is a QEMU fact: a board whose power driver is <c>qemu</c> is opened by
/// the suites and `hil run` through <see cref="QemuBoards.OpenAsync"/>, which starts a private QEMU
/// instance per session (own console socket, own secure log, own free SSH port, the cached image
/// read-only). Two runs of "qemu-optee" are two emulators, not one board shared: leasing them by
/// name would only serialize CI (the Smoke and SystemThreads assemblies of one `dotnet test` boot
/// it at once). Every other board — a real one, or QEMU behind ser2net and PDUDaemon, whose ports
/// and outlet are fixed — is one thing in the world, and is leased under its board name.
/// </summary>
public static class BoardLeasing
{
    /// <summary>Renewed every ttl/3; a dead holder's lease blocks the board at most this long (less on the same host: a dead pid is seen at once).</summary>
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(30);

    /// <summary>How long a run waits for a board someone else holds before it gives up (`hil run --lease-wait`).</summary>
    public static readonly TimeSpan DefaultWait = TimeSpan.FromMinutes(10);

    /// <summary>True when <paramref name="spec"/> names a board that must be leased before it is used.</summary>
    public static bool NeedsLease(BoardSpec spec) => spec.Power.Driver != QemuPowerDriver.DriverName;
}
