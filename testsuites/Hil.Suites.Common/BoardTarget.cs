using Hil.Patches;

namespace Hil.Suites.Common;

/// <summary>
/// One board a suite fixture runs on: the board's name (folder names in the results) and its board
/// file, and — in a patch run (<c>HIL_DRIVERS</c>) — the OP-TEE driver swapped in for the fixture.
/// A selection mistake does not throw at discovery time (NUnit would hide it); it travels in
/// <see cref="SelectionError"/> and every test of that fixture fails with it as a test error.
/// </summary>
public sealed record BoardTarget(string Name, string BoardFile, string? SelectionError = null)
{
    /// <summary>The driver under test (null: the board's own, as booted).</summary>
    public DriverUnderTest? Driver { get; init; }

    /// <summary>False when HIL_BOARDS named something unusable; <see cref="SelectionError"/> says why.</summary>
    public bool IsValid => SelectionError is null;

    /// <summary>The fixture shows as <c>Suite(qemu-optee)</c>, or <c>Suite(qemu-optee+bug-01)</c> with a driver under test.</summary>
    public override string ToString() => Driver is null ? Name : $"{Name}+{Driver.Name}";
}
