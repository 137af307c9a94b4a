using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Hil.Suites.Common;

/// <summary>
/// The facts a suite judges a board by, for one booted session: the board file's promises
/// (<see cref="SuiteFacts"/>) and what was read on the board itself. Written to
/// <c>RESULTS/BOARD/facts.json</c> (and <c>facts.txt</c>) after every boot.
/// </summary>
public sealed record BoardFacts
{
    public required string Board { get; init; }
    public required string BoardFile { get; init; }
    /// <summary>The OP-TEE driver's call-queue policy (mainline / legacy), from the board file.</summary>
    public required string KernelPolicy { get; init; }
    /// <summary>OP-TEE's thread count according to the board file (facts.optee_threads).</summary>
    public required int ExpectedThreads { get; init; }
    /// <summary>The thread count read on the board; null when this kernel does not expose it.</summary>
    public int? ObservedThreads { get; init; }
    /// <summary>What the board's record said ("2", "unavailable"), for the report.</summary>
    public required string ThreadsRaw { get; init; }
    /// <summary>Reading the thread count failed (an unexpected record): the smoke suite fails it as a product failure.</summary>
    public string? ThreadsReadError { get; init; }
    /// <summary>
    /// True where the harness knows the count must be observable: a QEMU image (its /init probes
    /// optee_cq_init) running a mainline kernel. Legacy kernels (before 6.8) do not count threads.
    /// </summary>
    public required bool ThreadsObservableExpected { get; init; }
    public string? KernelRelease { get; init; }
    public string? OpteeVersion { get; init; }
    /// <summary>"qemu image DIR" or "real board".</summary>
    public required string Source { get; init; }
    /// <summary>Which boot of this board (1 = first in this process) the facts were read on.</summary>
    public required int Session { get; init; }
    public required DateTimeOffset ReadAtUtc { get; init; }

    /// <summary>The thread count suites should use: read on the board when possible, else the board file's.</summary>
    [JsonIgnore] public int Threads => ObservedThreads ?? ExpectedThreads;
    [JsonIgnore] public bool ThreadsObservable => ObservedThreads is not null;
    /// <summary>The board contradicts its board file: a product failure of the smoke suite.</summary>
    [JsonIgnore] public bool ThreadsMismatch => ObservedThreads is { } o && o != ExpectedThreads;

    /// <summary>One line saying where the thread count comes from (printed by suites and in facts.txt).</summary>
    [JsonIgnore]
    public string ThreadsNote => ThreadsReadError is { } e ? $"OP-TEE thread count could not be read: {e}"
        : ObservedThreads is null ? $"OP-TEE thread count not observable on this kernel ({KernelRelease ?? "?"}, policy {KernelPolicy}: no thread counting in the driver); using the board file's value {ExpectedThreads}"
        : ThreadsMismatch ? $"OP-TEE thread count MISMATCH: the board reports {ObservedThreads}, the board file says {ExpectedThreads}"
        : $"OP-TEE thread count {ObservedThreads}, read on the board (as the board file says)";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Writes facts.json and facts.txt into <paramref name="directory"/>.</summary>
    public void WriteTo(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "facts.json"), JsonSerializer.Serialize(this, Json) + "\n");
        var sb = new StringBuilder()
            .AppendLine($"board:          {Board} ({BoardFile})")
            .AppendLine($"source:         {Source}")
            .AppendLine($"kernel:         {KernelRelease ?? "?"}")
            .AppendLine($"kernel policy:  {KernelPolicy} (board file)")
            .AppendLine($"OP-TEE:         {OpteeVersion ?? "?"}")
            .AppendLine($"threads:        {Threads} — {ThreadsNote}")
            .AppendLine($"read on:        session {Session} at {ReadAtUtc:yyyy-MM-dd'T'HH:mm:ss'Z'}");
        File.WriteAllText(Path.Combine(directory, "facts.txt"), sb.ToString());
    }
}
