namespace Hil.Boards.BoardFiles;

/// <summary>
/// The call-queue policies a board file may expect in facts.kernel_policy (measured on the board
/// either way): one list for the CLI's early check and the suites' reading of the board file.
/// </summary>
public static class KernelPolicies
{
    public static readonly IReadOnlyList<string> Known = ["mainline", "legacy"];
}
