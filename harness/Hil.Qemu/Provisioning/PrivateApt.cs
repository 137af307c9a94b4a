using System.Text;
using System.Text.RegularExpressions;
using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>One binary package resolved to an exact version, with the hash the signed index promises.</summary>
public sealed record ResolvedPackage(string Name, string Version, string Architecture, string Suite, string Sha256, long Size)
{
    /// <summary>The name apt-get download gives the file (an epoch's ':' is escaped).</summary>
    public string DebFileName => $"{Name}_{Version.Replace(":", "%3a")}_{Architecture}.deb";
    public override string ToString() => $"{Name}={Version} ({Architecture}, {Suite})";
}

/// <summary>A source package resolved to an exact version, with its files' hashes from the signed Sources index.</summary>
public sealed record ResolvedSource(string Name, string Version, string Suite, IReadOnlyList<(string File, string Sha256)> Files)
{
    public string DscFile => Files.First(f => f.File.EndsWith(".dsc", StringComparison.Ordinal)).File;
}

/// <summary>Where a private apt configuration fetches from.</summary>
public sealed record AptSource(string Uri, string Suite, bool WithSources = false);

/// <summary>
/// An apt configuration of our own: its sources list, index lists, download cache and (empty) dpkg
/// status live under <see cref="Root"/>, and APT_CONFIG points apt at a config file that names
/// only those folders, so neither /etc/apt nor the system's dpkg database is read or written.
/// It only resolves and downloads; nothing is ever installed through it.
/// </summary>
public sealed class PrivateApt
{
    public string Name { get; }
    public string Root { get; }
    public string Architecture { get; }
    public IReadOnlyList<AptSource> Sources { get; }
    private readonly string _keyring;

    public PrivateApt(string name, string root, string architecture, IReadOnlyList<AptSource> sources,
        string keyring = "/usr/share/keyrings/debian-archive-keyring.gpg")
    {
        Name = name; Root = root; Architecture = architecture; Sources = sources; _keyring = keyring;
    }

    private string ConfigFile => Path.Combine(Root, "apt.conf");
    private IReadOnlyDictionary<string, string> Env => new Dictionary<string, string> { ["APT_CONFIG"] = ConfigFile };

    /// <summary>Writes the config (idempotent). Changing the mirror rewrites the sources list.</summary>
    public void WriteConfiguration()
    {
        foreach (var d in new[] { "etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d",
                     "state/lists/partial", "cache/archives/partial" })
            Directory.CreateDirectory(Path.Combine(Root, d));
        var status = Path.Combine(Root, "state/status");
        if (!File.Exists(status)) File.WriteAllText(status, "");

        var list = new StringBuilder("# Written by HilHarness; private to this configuration.\n");
        foreach (var s in Sources)
        {
            list.Append($"deb [signed-by={_keyring}] {s.Uri} {s.Suite} main\n");
            if (s.WithSources) list.Append($"deb-src [signed-by={_keyring}] {s.Uri} {s.Suite} main\n");
        }
        WriteIfChanged(Path.Combine(Root, "etc/sources.list"), list.ToString());

        string Q(string p) => "\"" + p + "\"";
        var conf = $$"""
            // Written by HilHarness. Every folder apt uses is below {{Root}};
            // the system's /etc/apt, /var/lib/apt and dpkg status are never used.
            Dir::Etc {{Q(Path.Combine(Root, "etc"))}};
            Dir::Etc::sourcelist "sources.list";
            Dir::Etc::sourceparts "sources.list.d";
            Dir::Etc::parts "apt.conf.d";
            Dir::Etc::main "apt-main.conf";
            Dir::Etc::preferences "preferences";
            Dir::Etc::preferencesparts "preferences.d";
            Dir::Etc::trusted "trusted.gpg";
            Dir::Etc::trustedparts "trusted.gpg.d";
            Dir::State {{Q(Path.Combine(Root, "state"))}};
            Dir::State::status {{Q(status)}};
            Dir::Cache {{Q(Path.Combine(Root, "cache"))}};
            Dir::Log {{Q(Path.Combine(Root, "log"))}};
            APT::Architecture "{{Architecture}}";
            APT::Architectures { "{{Architecture}}"; };
            Acquire::Languages "none";
            Acquire::Retries "3";
            APT::Get::AllowUnauthenticated "false";
            // Downloads land in folders owned by the invoking user; dropping to _apt would fail there.
            APT::Sandbox::User "{{Environment.UserName}}";

            """;
        WriteIfChanged(ConfigFile, conf);
    }

    private static void WriteIfChanged(string path, string text)
    {
        if (!File.Exists(path) || File.ReadAllText(path) != text) File.WriteAllText(path, text);
    }

    public Task UpdateAsync(CancellationToken ct) =>
        Apt("apt-get", ["-q", "update"], ct);

    /// <summary>True when index lists from an earlier update are present.</summary>
    public bool HasLists => Directory.Exists(Path.Combine(Root, "state/lists")) &&
        Directory.EnumerateFiles(Path.Combine(Root, "state/lists"), "*Packages*").Any();

    /// <summary>Resolves each name to its candidate version (apt's normal pin rules).</summary>
    public async Task<IReadOnlyList<ResolvedPackage>> ResolveAsync(IReadOnlyList<string> names, CancellationToken ct)
    {
        var show = await Apt("apt-cache", ["show", "--no-all-versions", .. names], ct, allowMissing: true);
        var stanzas = ParseStanzas(show.Stdout).ToDictionary(s => s["Package"], s => s);
        var madison = await Apt("apt-cache", ["madison", .. names], ct, allowMissing: true);
        var result = new List<ResolvedPackage>();
        foreach (var n in names)
        {
            if (!stanzas.TryGetValue(n, out var st))
                throw new ProvisioningException($"package '{n}' was not found in the {Name} apt configuration ({string.Join(", ", Sources.Select(s => s.Suite))})");
            var version = st["Version"];
            result.Add(new ResolvedPackage(n, version, st["Architecture"], SuiteOf(madison.Stdout, n, version, "Packages"),
                st["SHA256"], long.Parse(st["Size"])));
        }
        return result;
    }

    /// <summary>
    /// Resolves one package at an exact version, whatever the candidate is: a board's kernel pins
    /// the version of everything built against it (its source, its headers), and the archive's
    /// candidate moves on with every point release.
    /// </summary>
    public async Task<ResolvedPackage> ResolveExactAsync(string name, string version, CancellationToken ct)
    {
        var show = await Apt("apt-cache", ["show", $"{name}={version}"], ct, allowMissing: true);
        var st = ParseStanzas(show.Stdout).FirstOrDefault(s => s.GetValueOrDefault("Package") == name && s.GetValueOrDefault("Version") == version)
            ?? throw new ProvisioningException($"package '{name}' version {version} was not found in the {Name} apt configuration ({string.Join(", ", Sources.Select(s => s.Suite))})");
        var madison = await Apt("apt-cache", ["madison", name], ct, allowMissing: true);
        return new ResolvedPackage(name, version, st["Architecture"], SuiteOf(madison.Stdout, name, version, "Packages"),
            st["SHA256"], long.Parse(st["Size"]));
    }

    /// <summary>The 'Depends' of the candidate of one package, as (name, exact version or null) pairs; alternatives keep the first.</summary>
    public async Task<IReadOnlyList<(string Name, string? ExactVersion)>> DependsAsync(string name, CancellationToken ct)
    {
        var show = await Apt("apt-cache", ["show", "--no-all-versions", name], ct);
        var st = ParseStanzas(show.Stdout).First();
        if (!st.TryGetValue("Depends", out var deps)) return [];
        var list = new List<(string, string?)>();
        foreach (var d in deps.Split(','))
        {
            var first = d.Split('|')[0].Trim();
            var m = Regex.Match(first, @"^(\S+)(?:\s*\(\s*(=|>=|<=|>>|<<)\s*([^)]+)\))?");
            list.Add((m.Groups[1].Value.Split(':')[0], m.Groups[2].Value == "=" ? m.Groups[3].Value.Trim() : null));
        }
        return list;
    }

    /// <summary>Package names matching a regular expression (names only), as apt-cache search lists them.</summary>
    public async Task<IReadOnlyList<string>> SearchNamesAsync(string regex, CancellationToken ct)
    {
        var r = await Apt("apt-cache", ["search", "--names-only", regex], ct);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(" - ")[0].Trim()).ToList();
    }

    /// <summary>Compares two Debian versions with dpkg's own rules.</summary>
    public static async Task<bool> VersionGreaterAsync(string a, string b, CancellationToken ct) =>
        (await ExternalTool.RunAsync("dpkg", ["--compare-versions", a, "gt", b], check: false, ct: ct)).ExitCode == 0;

    public async Task<ResolvedSource> ResolveSourceAsync(string name, CancellationToken ct)
    {
        var r = await Apt("apt-cache", ["showsrc", "--only-source", name], ct);
        var stanzas = ParseStanzas(r.Stdout).Where(s => s.GetValueOrDefault("Package") == name).ToList();
        if (stanzas.Count == 0) throw new ProvisioningException($"source package '{name}' not found in {Name}");
        // Several suites may carry it: take the highest version, as apt-get source would.
        var best = stanzas[0];
        foreach (var s in stanzas.Skip(1))
            if (await VersionGreaterAsync(s["Version"], best["Version"], ct)) best = s;
        var files = best["Checksums-Sha256"].Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(p => (p[2], p[0])).ToList();
        var madison = await Apt("apt-cache", ["madison", name], ct);
        return new ResolvedSource(name, best["Version"], SuiteOf(madison.Stdout, name, best["Version"], "Sources"), files);
    }

    /// <summary>Downloads exact versions into <paramref name="directory"/>; apt checks each file against the signed index.</summary>
    public Task DownloadAsync(IReadOnlyList<ResolvedPackage> packages, string directory, CancellationToken ct) =>
        Apt("apt-get", ["-q", "download", .. packages.Select(p => $"{p.Name}={p.Version}")], ct, cwd: directory);

    public Task DownloadSourceAsync(ResolvedSource source, string directory, CancellationToken ct) =>
        Apt("apt-get", ["-q", "source", "--download-only", $"{source.Name}={source.Version}"], ct, cwd: directory);

    private async Task<ToolResult> Apt(string tool, string[] args, CancellationToken ct, string? cwd = null, bool allowMissing = false)
    {
        var r = await ExternalTool.RunAsync(tool, args, cwd, Env, check: !allowMissing, ct: ct);
        return r;
    }

    /// <summary>The suite a version comes from, read from apt-cache madison ("… | ver | URI suite/main arch Packages").</summary>
    private string SuiteOf(string madison, string name, string version, string kind)
    {
        foreach (var line in madison.Split('\n'))
        {
            var parts = line.Split('|').Select(p => p.Trim()).ToArray();
            if (parts.Length < 3 || parts[0] != name || parts[1] != version || !parts[2].EndsWith(kind, StringComparison.Ordinal)) continue;
            var fields = parts[2].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 2) return fields[1].Split('/')[0];
        }
        // 'all' packages and sources can be listed under their binary name only: fall back to the first suite.
        return Sources[0].Suite;
    }

    /// <summary>Splits deb822 text ("Field: value" with indented continuation lines) into dictionaries.</summary>
    internal static IEnumerable<Dictionary<string, string>> ParseStanzas(string text)
    {
        Dictionary<string, string>? cur = null;
        string? last = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0)
            {
                if (cur is { Count: > 0 }) yield return cur;
                cur = null; last = null;
                continue;
            }
            cur ??= new Dictionary<string, string>(StringComparer.Ordinal);
            if ((line[0] == ' ' || line[0] == '\t') && last is not null)
            {
                cur[last] += "\n" + line.Trim();
                continue;
            }
            var colon = line.IndexOf(':');
            if (colon <= 0) continue;
            last = line[..colon];
            cur[last] = line[(colon + 1)..].Trim();
        }
        if (cur is { Count: > 0 }) yield return cur;
    }
}
