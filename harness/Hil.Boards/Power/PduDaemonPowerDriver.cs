using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Serilog;

namespace Hil.Boards.Power;

/// <summary>
/// PDUDaemon's HTTP API: <c>GET /power/control/{on|off|reboot}?hostname=PDU&amp;port=OUTLET[&amp;delay=S]</c>.
/// PDUDaemon queues the request and answers at once; it cannot report an outlet's state.
/// </summary>
public sealed class PduDaemonPowerDriver(PowerSpec spec, ILogger logger, HttpClient? http = null) : IPowerDriver
{
    private readonly HttpClient _http = http ?? new HttpClient { Timeout = spec.CommandTimeout };

    public string Name => "pdudaemon";
    public bool CanSwitch => true;

    public Task OnAsync(CancellationToken ct) => SendAsync("on", null, ct);
    public Task OffAsync(CancellationToken ct) => SendAsync("off", null, ct);
    public Task CycleAsync(CancellationToken ct) => SendAsync("reboot", (int)Math.Ceiling(spec.OffTime.TotalSeconds), ct);
    public Task<bool?> IsAliveAsync(CancellationToken ct) => Task.FromResult<bool?>(null);

    /// <summary>The request URL (values escaped, so a board file cannot smuggle extra parameters).</summary>
    public Uri RequestUri(string action, int? delay)
    {
        var q = $"hostname={Uri.EscapeDataString(spec.PduHostname!)}&port={Uri.EscapeDataString(spec.PduPort!)}";
        if (delay is { } d) q += $"&delay={d}";
        return new Uri(new Uri(spec.Url!.TrimEnd('/') + "/"), $"power/control/{action}?{q}");
    }

    private async Task SendAsync(string action, int? delay, CancellationToken ct)
    {
        var uri = RequestUri(action, delay);
        logger.Information("power {Action} via PDUDaemon: {Uri}", action, uri);
        try
        {
            using var response = await _http.GetAsync(uri, ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
                throw new InfrastructureException($"PDUDaemon refused power {action}: HTTP {(int)response.StatusCode} from {uri}");
        }
        catch (HttpRequestException ex)
        {
            throw new InfrastructureException($"PDUDaemon at {spec.Url} is unreachable: {ex.Message}", ex);
        }
        catch (TaskCanceledException ex) when (!ct.IsCancellationRequested)
        {
            throw new InfrastructureException($"PDUDaemon at {spec.Url} did not answer in time", ex);
        }
    }
}
