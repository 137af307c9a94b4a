namespace Hil.Boards.Failures;

/// <summary>
/// Who is to blame for a failure. Callers retry <see cref="Infrastructure"/> only: a product
/// failure retried until it passes would hide a real bug, and a test error will just repeat.
/// </summary>
public enum FailureClass
{
    /// <summary>The lab failed: link lost, power, board unreachable, lock, corrupted console.</summary>
    Infrastructure,
    /// <summary>The board misbehaved: panic, Oops, wrong result, hang, model violation.</summary>
    Product,
    /// <summary>The test or the harness itself erred: bad board file, bad arguments, a harness bug.</summary>
    Test,
}
