using System.Collections.Concurrent;
using System.Text.Json;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Kernel;
using Hil.Qemu.Board;
using Hil.Qemu.Provisioning;
using Serilog;

namespace Hil.Suites.Common;

/// <summary>What provisioning a QEMU board's image did in this run (cold = it downloaded or built something).</summary>
public sealed record ProvisioningRecord(string Board, string Image, string ImageDirectory, bool Cold, double Seconds, string Cache,
    IReadOnlyList<string> Steps);

/// <summary>
/// Provisions (or reuses) the image a QEMU board file names, once per process, through Hil.Qemu's
/// provisioner and cache (<c>HIL_CACHE</c> or <c>~/.cache/hil</c>); the provisioning lock lets
/// several test processes share one cache, the first one builds it. Records the outcome and the
/// image manifest in the board's results folder.
/// </summary>
public static class ImageProvisioning
{
    private static readonly ConcurrentDictionary<string, Lazy<Task<(ProvisionedImage, ProvisioningRecord)>>> Done = new();

    public static HilCache Cache { get; } = HilCache.Default();

    /// <summary>The image for <paramref name="spec"/> (power.settings.image), provisioned if the cache lacks it.</summary>
    public static async Task<(ProvisionedImage Image, ProvisioningRecord Record)> EnsureAsync(BoardSpec spec, ILogger log, CancellationToken ct)
    {
        if (!spec.Power.Settings.TryGetValue(QemuBoards.ImageSetting, out var name))
            throw new TestErrorException($"{spec.SourceFile}: power.settings.{QemuBoards.ImageSetting}: missing; name the provisioned image ({string.Join(", ", BoardRecipe.All.Select(r => r.Board))})");
        var recipe = BoardRecipe.All.FirstOrDefault(r => r.Board == name)
            ?? throw new TestErrorException($"{spec.SourceFile}: power.settings.{QemuBoards.ImageSetting}: unknown image '{name}'; known: {string.Join(", ", BoardRecipe.All.Select(r => r.Board))}");
        var lazy = Done.GetOrAdd(name, _ => new Lazy<Task<(ProvisionedImage, ProvisioningRecord)>>(() => ProvisionAsync(recipe, log, ct)));
        try
        {
            return await lazy.Value.ConfigureAwait(false);
        }
        catch
        {
            // A failed attempt (mirror down) must not stick: the retry provisions again.
            Done.TryRemove(new KeyValuePair<string, Lazy<Task<(ProvisionedImage, ProvisioningRecord)>>>(name, lazy));
            throw;
        }
    }

    private static async Task<(ProvisionedImage, ProvisioningRecord)> ProvisionAsync(BoardRecipe recipe, ILogger log, CancellationToken ct)
    {
        ProvisionResult result;
        try
        {
            result = await new QemuProvisioner(Cache, new ProvisionOptions(), log, new LogProvisionProgress(log))
                .ProvisionAsync([recipe], ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ProvisioningException or ExternalToolException)
        {
            // Mirrors, downloads and host tools are the lab's part: retryable.
            throw new InfrastructureException($"provisioning image {recipe.Board} into {Cache.Root} failed: {ex.Message}", ex);
        }
        var image = result.Images[0];
        var record = new ProvisioningRecord(recipe.Board, Path.GetFileName(image.Directory), image.Directory, result.DidWork,
            Math.Round(result.Elapsed.TotalSeconds, 1), Cache.Root,
            result.Steps.Select(s => $"{s.Kind} {s.Name} {s.Duration.TotalSeconds:0.0} s").ToList());
        log.Information("provisioning {Image}: {Kind} in {Seconds:0.0} s ({Dir})", recipe.Board, record.Cold ? "cold" : "warm", record.Seconds, image.Directory);
        return (image, record);
    }

    /// <summary>Writes provisioning.json and the image manifest (manifest.json, manifest.txt) into a board's results folder.</summary>
    public static void Record(string boardDirectory, ProvisionedImage image, ProvisioningRecord record)
    {
        Directory.CreateDirectory(boardDirectory);
        File.WriteAllText(Path.Combine(boardDirectory, "provisioning.json"),
            JsonSerializer.Serialize(record, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }) + "\n");
        foreach (var (from, name) in new[] { (image.ManifestPath, Manifest.JsonName), (image.ManifestTablePath, Manifest.TableName) })
            if (File.Exists(from)) File.Copy(from, Path.Combine(boardDirectory, name), overwrite: true);
    }
}
