namespace Hil.Patches;

/// <summary>Why a series was refused before anything reached a board.</summary>
public enum PatchRejection
{
    /// <summary>The file could not be read as text (missing, a folder, too large).</summary>
    Unreadable,
    /// <summary>No diff at all (an empty file, a message without a diff).</summary>
    Empty,
    /// <summary>A binary file or a git binary patch: nothing the driver build can use.</summary>
    Binary,
    /// <summary>A hunk or header that is not a well-formed unified diff.</summary>
    Malformed,
    /// <summary>A path outside drivers/tee/ (or one that climbs out with '..').</summary>
    OutsideTree,
    /// <summary>A hunk that does not apply to the board kernel's source.</summary>
    DoesNotApply,
    /// <summary>The patched driver does not compile.</summary>
    DoesNotBuild,
    /// <summary>The built module would crash the board at insmod (misaligned ftrace patch sites).</summary>
    NotDeployable,
    /// <summary>The board cannot take a patched driver (not provisioned, no module kit).</summary>
    Board,
}

/// <summary>
/// Bad input: the series (or the board asked for) cannot be validated. The message is one line
/// naming the patch, the file and the hunk or line where that makes sense; the CLI prints it and
/// exits 2. Nothing is booted, and nothing is built after the refusal.
/// </summary>
public sealed class PatchRejectedException(PatchRejection reason, string message, IReadOnlyList<string>? details = null)
    : Exception(message)
{
    public PatchRejection Reason { get; } = reason;
    /// <summary>Evidence beyond the one line (the first compiler errors), for logs and reports.</summary>
    public IReadOnlyList<string> Details { get; } = details ?? [];
}

/// <summary>
/// The build machinery itself failed (debootstrap, the network, the unpatched control not
/// building): not the patch's fault, so never a verdict about it.
/// </summary>
public sealed class PatchEnvironmentException(string message, Exception? inner = null) : Exception(message, inner);
