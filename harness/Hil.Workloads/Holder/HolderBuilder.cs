using Hil.Kernel;
using Serilog;

namespace Hil.Workloads.Holder;

/// <summary>A teeholder executable for arm64 Linux, linked against the board's libteec.</summary>
public sealed record BuiltHolder(string Path, string Key, bool Reused);

/// <summary>
/// Cross-compiles tools/teeholder with the host's aarch64 gcc against the libteec headers and
/// library provisioning extracted from Debian (the board has the same libteec2 installed).
/// Cached by source content and libteec version.
/// </summary>
public sealed class HolderBuilder(BuildCache cache, ILogger log)
{
    public const string Compiler = "aarch64-linux-gnu-gcc";
    public const string SourceDirectory = "tools/teeholder";
    public static readonly IReadOnlyList<string> SourceFiles = ["teeholder.c"];
    public const string ExecutableName = "teeholder";

    /// <summary>gcc's argument vector (warnings are errors; stripped: nothing on the board needs symbols).</summary>
    public static IReadOnlyList<string> CompilerArguments(LibteecSysroot libteec, string source, string output) =>
    [
        "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-s",
        "-I" + libteec.IncludeDirectory,
        "-o", output, source,
        "-L" + libteec.LibraryDirectory, "-lteec", "-pthread",
    ];

    public async Task<BuiltHolder> BuildAsync(LibteecSysroot libteec, SourceSet? source = null, CancellationToken ct = default)
    {
        source ??= SourceSet.Find(SourceDirectory, SourceFiles);
        var key = source.ContentKey([$"libteec {libteec.Version} {libteec.Directory}", string.Join(' ', CompilerArguments(libteec, "SRC", "OUT")), "build v1"]);
        var (dir, reused) = await cache.GetOrBuildAsync("teeholder", $"libteec-{libteec.Version}-{key}", async target =>
        {
            source.CopyTo(Path.Combine(target, "src"));
            var args = CompilerArguments(libteec, Path.Combine(target, "src", SourceFiles[0]), Path.Combine(target, ExecutableName));
            log.Information("holder: building {Exe}: {Command}", ExecutableName, ExternalTool.Describe(Compiler, args));
            try
            {
                await ExternalTool.RunAsync(Compiler, args, ct: ct).ConfigureAwait(false);
            }
            catch (ExternalToolException ex)
            {
                throw new WorkloadBuildException($"building {ExecutableName} failed: {ex.Message}", ex);
            }
        }).ConfigureAwait(false);
        return new BuiltHolder(Path.Combine(dir, ExecutableName), key, reused);
    }
}
