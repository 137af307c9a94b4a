namespace Hil.Suites.Common;

/// <summary>
/// One board a suite fixture runs on: the board's name (the fixture's display name, folder names
/// in the results) and its board file. A selection mistake does not throw at discovery time (NUnit
/// would hide it); it travels in <see cref="SelectionError"/> and every test of that fixture fails
/// with it as a test error.
/// </summary>
public sealed record BoardTarget(string Name, string BoardFile, string? SelectionError = null)
{
    /// <summary>False when HIL_BOARDS named something unusable; <see cref="SelectionError"/> says why.</summary>
    public bool IsValid => SelectionError is null;

    /// <summary>The fixture shows as <c>Suite(qemu-optee)</c>.</summary>
    public override string ToString() => Name;
}
