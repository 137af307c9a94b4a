using System.Text;
using System.Text.Json;
using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>One input of an image: a binary package, or a file of a source package.</summary>
public sealed record ManifestPackage(string Package, string Version, string Architecture, string Suite, string Role, string File, string Sha256);

/// <summary>One output file of an image, relative to the image folder.</summary>
public sealed record ManifestFile(string Path, long Size, string Sha256);

/// <summary>
/// What an image was made from and what it consists of, written beside it as manifest.json and as
/// a table (manifest.txt) for people. Every sha256 here was computed from the file itself.
/// </summary>
public sealed record Manifest(string Board, string CacheKey, string RecipeKey, IReadOnlyList<ManifestPackage> Packages, IReadOnlyList<ManifestFile> Files)
{
    public const string JsonName = "manifest.json";
    public const string TableName = "manifest.txt";

    public static Manifest Load(string imageDirectory) =>
        JsonSerializer.Deserialize<Manifest>(File.ReadAllText(Path.Combine(imageDirectory, JsonName)), Json.Options)
        ?? throw new ProvisioningException($"{imageDirectory}/{JsonName} is empty");

    public void Write(string imageDirectory)
    {
        File.WriteAllText(Path.Combine(imageDirectory, JsonName), JsonSerializer.Serialize(this, Json.Options));
        File.WriteAllText(Path.Combine(imageDirectory, TableName), ToTable());
    }

    public string ToTable()
    {
        var sb = new StringBuilder($"# {Board} image {CacheKey} (recipe {RecipeKey})\n\n");
        var rows = Packages.Select(p => new[] { p.Package, p.Version, p.Architecture, p.Suite, p.Role, p.Sha256 }).ToList();
        AppendTable(sb, ["package", "version", "arch", "suite", "role", "sha256"], rows);
        sb.Append('\n');
        AppendTable(sb, ["file", "size", "sha256"], Files.Select(f => new[] { f.Path, f.Size.ToString(), f.Sha256 }).ToList());
        return sb.ToString();
    }

    private static void AppendTable(StringBuilder sb, string[] header, List<string[]> rows)
    {
        var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        void Row(string[] cells) => sb.Append(string.Join("  ", cells.Select((c, i) => c.PadRight(widths[i]))).TrimEnd()).Append('\n');
        Row(header);
        Row(widths.Select(w => new string('-', w)).ToArray());
        foreach (var r in rows) Row(r);
    }

    /// <summary>Files whose size or sha256 no longer match (empty when the image is intact).</summary>
    public IReadOnlyList<string> Verify(string imageDirectory, bool hashes)
    {
        var bad = new List<string>();
        foreach (var f in Files)
        {
            var p = System.IO.Path.Combine(imageDirectory, f.Path);
            if (!System.IO.File.Exists(p)) { bad.Add($"{f.Path}: missing"); continue; }
            if (new FileInfo(p).Length != f.Size) { bad.Add($"{f.Path}: size changed"); continue; }
            if (hashes && HilCache.Sha256OfFile(p) != f.Sha256) bad.Add($"{f.Path}: sha256 changed");
        }
        return bad;
    }
}
