using System.Globalization;
using System.Text.Json;

namespace Hil.Boards.Leases;

/// <summary>
/// The content of a lease file (JSON): which board, who holds it, the holder's token (new at every
/// take, so a holder recognises its own file even when its pid was reused), when it was taken and
/// last renewed, and when it expires unless renewed again.
/// </summary>
public sealed record LeaseRecord(string Board, LeaseHolder Holder, string Token, DateTimeOffset TakenUtc, DateTimeOffset RenewedUtc,
    DateTimeOffset ExpiresUtc, TimeSpan Ttl)
{
    /// <summary>No sane lease lives longer: an expiry further away is tampering or a broken clock, never trusted.</summary>
    public static readonly TimeSpan MaxTtl = TimeSpan.FromDays(1);

    /// <summary>How far hosts sharing a lease folder may disagree on the time.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    /// <summary>Renewal writes expires = renewed + ttl; a little slack for rounding.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(1);

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("board", Board);
            w.WriteString("owner", Holder.Owner);
            w.WriteString("host", Holder.Host);
            w.WriteString("boot_id", Holder.BootId);
            w.WriteNumber("pid", Holder.Pid);
            w.WriteNumber("process_start_ticks", Holder.ProcessStart);
            w.WriteString("token", Token);
            w.WriteString("taken_utc", Stamp(TakenUtc));
            w.WriteString("renewed_utc", Stamp(RenewedUtc));
            w.WriteString("expires_utc", Stamp(ExpiresUtc));
            w.WriteNumber("ttl_seconds", Math.Round(Ttl.TotalSeconds, 3));
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    /// <summary>
    /// Reads a lease file's text; throws <see cref="LeaseCorruptException"/> naming the field at fault
    /// when it is not JSON, a field is missing or of the wrong kind, or the times make no sense.
    /// </summary>
    public static LeaseRecord Parse(string text, string file, DateTimeOffset now)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text);
        }
        catch (JsonException ex)
        {
            throw new LeaseCorruptException(file, "(file)", $"not JSON ({ex.Message.Split('\n')[0]})");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new LeaseCorruptException(file, "(file)", "not a JSON object");

            JsonElement Field(string name, JsonValueKind kind)
            {
                if (!root.TryGetProperty(name, out var v)) throw new LeaseCorruptException(file, name, "missing");
                if (v.ValueKind != kind) throw new LeaseCorruptException(file, name, $"is {v.ValueKind.ToString().ToLowerInvariant()}, expected {kind.ToString().ToLowerInvariant()}");
                return v;
            }
            string Text(string name, bool mayBeEmpty = false)
            {
                var s = Field(name, JsonValueKind.String).GetString()!;
                if (!mayBeEmpty && s.Trim().Length == 0) throw new LeaseCorruptException(file, name, "is empty");
                return s;
            }
            DateTimeOffset Time(string name)
            {
                var s = Text(name);
                if (!DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t))
                    throw new LeaseCorruptException(file, name, $"'{s}' is not a UTC time");
                return t;
            }

            var board = Text("board");
            var pidValue = Field("pid", JsonValueKind.Number);
            if (!pidValue.TryGetInt32(out var pid) || pid <= 0) throw new LeaseCorruptException(file, "pid", $"{pidValue.GetRawText()} is not a process id");
            var startValue = Field("process_start_ticks", JsonValueKind.Number);
            if (!startValue.TryGetInt64(out var start) || start < 0) throw new LeaseCorruptException(file, "process_start_ticks", $"{startValue.GetRawText()} is not a tick count");
            var holder = new LeaseHolder(Text("owner"), Text("host"), Text("boot_id", mayBeEmpty: true), pid, start);
            var token = Text("token");
            var taken = Time("taken_utc");
            var renewed = Time("renewed_utc");
            var expires = Time("expires_utc");
            var ttlValue = Field("ttl_seconds", JsonValueKind.Number);
            if (!ttlValue.TryGetDouble(out var ttlSeconds) || ttlSeconds <= 0 || ttlSeconds > MaxTtl.TotalSeconds)
                throw new LeaseCorruptException(file, "ttl_seconds", $"{ttlValue.GetRawText()} is not between 0 and {MaxTtl.TotalSeconds:0} s");
            var ttl = TimeSpan.FromSeconds(ttlSeconds);
            // Hosts sharing a lease folder may disagree on the time a little; a renewal from far ahead is tampering.
            if (renewed > now + ClockSkew) throw new LeaseCorruptException(file, "renewed_utc", $"{Stamp(renewed)} is in the future");
            if (renewed < taken) throw new LeaseCorruptException(file, "renewed_utc", $"{Stamp(renewed)} is before taken_utc {Stamp(taken)}");
            // An expiry far away would block the board for good: only what renewal itself writes is believed.
            if (expires < renewed || expires > renewed + ttl + Slack)
                throw new LeaseCorruptException(file, "expires_utc", $"{Stamp(expires)} is not renewed_utc {Stamp(renewed)} + ttl {ttlSeconds} s");
            if (expires > now + MaxTtl) throw new LeaseCorruptException(file, "expires_utc", $"{Stamp(expires)} is more than {MaxTtl.TotalHours:0} h away");
            return new LeaseRecord(board, holder, token, taken, renewed, expires, ttl);
        }
    }
}

/// <summary>A lease file that cannot be believed, and why (which field).</summary>
public sealed class LeaseCorruptException(string file, string field, string problem)
    : Exception($"lease file {file} is corrupt: {field}: {problem}")
{
    public string File { get; } = file;
    public string Field { get; } = field;
    public string Problem { get; } = problem;
}
