using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Hil.Boards.Failures;

namespace Hil.Suites.Common;

/// <summary>
/// One fact the suites judge a board by: what was measured on the board (and from what), or why it
/// could not be; and what the board file expects, if it says anything.
/// </summary>
public sealed record Fact
{
    /// <summary>What the fact is, in words ("kernel policy").</summary>
    public required string Name { get; init; }
    public string? Measured { get; init; }
    /// <summary>Where on the board the measurement came from ("driver: …", "firmware: …").</summary>
    public string? MeasuredFrom { get; init; }
    /// <summary>Why nothing was measured (null when <see cref="Measured"/> is set).</summary>
    public string? NotMeasured { get; init; }
    /// <summary>The class of the failure that kept it from being measured (a harness limit, or the board failing).</summary>
    public FailureClass NotMeasuredClass { get; init; } = FailureClass.Test;
    /// <summary>The board file's expectation, when it states one.</summary>
    public string? Expected { get; init; }
    /// <summary>"FILE:LINE: facts.KEY".</summary>
    public string? ExpectedFrom { get; init; }

    [JsonIgnore] public bool Mismatch => Measured is not null && Expected is not null && Measured != Expected;

    /// <summary>Measured and not contradicted by the board file: the value to judge the board by.</summary>
    public string Require(string board)
    {
        if (Measured is null)
            throw new HilException(NotMeasuredClass, $"board {board}: {Name} could not be measured on the board: {NotMeasured}");
        if (Mismatch)
            throw new ProductFailureException(MismatchText, [$"measured: {MeasuredFrom}", $"expected: {ExpectedFrom}"]);
        return Measured;
    }

    [JsonIgnore] public string MismatchText => $"{Name}: measured {Measured} on the board, but {ExpectedFrom} expects {Expected}";

    /// <summary>One line for facts.txt and progress output.</summary>
    [JsonIgnore]
    public string Note
    {
        get
        {
            var expected = Expected is null ? "the board file states none" : $"{ExpectedFrom} expects {Expected}";
            return Measured is null ? $"not measured ({NotMeasured}); {expected}"
                : Mismatch ? $"{Measured} — MISMATCH: measured ({MeasuredFrom}), but {expected}"
                : $"{Measured} — measured ({MeasuredFrom}); {expected}";
        }
    }
}

/// <summary>
/// The facts a suite judges a board by, for one booted session, measured on the board itself:
/// the driver's call-queue policy (from the loaded optee.ko's code) and OP-TEE's secure thread
/// count (asked of the firmware), beside the board file's optional expectations. Written to
/// <c>RESULTS/BOARD/facts.json</c> (and <c>facts.txt</c>) after every boot.
/// </summary>
public sealed record BoardFacts
{
    public required string Board { get; init; }
    public required string BoardFile { get; init; }
    /// <summary>The OP-TEE driver's call-queue policy (mainline / legacy), told from the loaded driver's code.</summary>
    public required Fact Policy { get; init; }
    /// <summary>OP-TEE's secure thread count (CFG_NUM_THREADS), as the firmware answers OPTEE_SMC_GET_THREAD_COUNT.</summary>
    public required Fact Threads { get; init; }
    /// <summary>
    /// The count the OP-TEE driver itself got at probe (Linux 6.8+), as the QEMU image's /init
    /// recorded it: "2", "unavailable" (the driver does not count) or "absent" (no record on this board).
    /// </summary>
    public required string DriverThreadsRecord { get; init; }
    public string? KernelRelease { get; init; }
    public string? OpteeVersion { get; init; }
    /// <summary>"qemu image DIR" or "real board".</summary>
    public required string Source { get; init; }
    /// <summary>Which boot of this board (1 = first in this process) the facts were read on.</summary>
    public required int Session { get; init; }
    public required DateTimeOffset ReadAtUtc { get; init; }

    /// <summary>The driver's own count, when it has one.</summary>
    [JsonIgnore] public int? DriverThreads => int.TryParse(DriverThreadsRecord, out var n) ? n : null;

    /// <summary>The firmware and the driver both answered, differently: the driver runs with a wrong count.</summary>
    [JsonIgnore] public bool DriverDisagrees => DriverThreads is { } d && int.TryParse(Threads.Measured, out var f) && d != f;

    /// <summary>The policy to judge by: measured, agreeing with the board file.</summary>
    public string RequirePolicy() => Policy.Require(Board);

    /// <summary>The thread count to judge by: measured from the firmware, agreeing with the board file and the driver.</summary>
    public int RequireThreads()
    {
        var n = int.Parse(Threads.Require(Board), System.Globalization.CultureInfo.InvariantCulture);
        if (DriverDisagrees)
            throw new ProductFailureException($"board {Board}: OP-TEE reports {n} secure threads, but the OP-TEE driver counts {DriverThreads}",
                [$"firmware: {Threads.MeasuredFrom}", $"driver: {DriverThreadsRecord} (its optee_cq_init probe record)"]);
        return n;
    }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new JsonStringEnumConverter() },
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
            .AppendLine($"kernel policy:  {Policy.Note}")
            .AppendLine($"OP-TEE:         {OpteeVersion ?? "?"}")
            .AppendLine($"threads:        {Threads.Note}")
            .AppendLine($"driver count:   {DriverThreadsRecord} (the driver's own, from its optee_cq_init probe record){(DriverDisagrees ? " — DISAGREES with the firmware" : "")}")
            .AppendLine($"read on:        session {Session} at {ReadAtUtc:yyyy-MM-dd'T'HH:mm:ss'Z'}");
        File.WriteAllText(Path.Combine(directory, "facts.txt"), sb.ToString());
    }

    /// <summary>One line for progress output.</summary>
    [JsonIgnore] public string Summary => $"kernel {KernelRelease ?? "?"}; policy {Policy.Measured ?? "not measured"}; {Threads.Measured ?? "unmeasured"} secure threads (driver: {DriverThreadsRecord})";
}
