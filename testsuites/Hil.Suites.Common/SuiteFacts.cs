using Hil.Boards.BoardFiles;
using YamlDotNet.RepresentationModel;

namespace Hil.Suites.Common;

/// <summary>
/// What a board file expects of its board (its <c>facts:</c> section): the call-queue policy of the
/// kernel's OP-TEE driver and OP-TEE's thread count (CFG_NUM_THREADS). Both are optional: the
/// suites measure both on every boot (<see cref="FactsReader"/>) and judge the board by what they
/// measured; an expectation that is given must agree with the measurement, or the board fails.
/// </summary>
/// <param name="PolicyFrom">Where the policy expectation is written ("FILE:LINE: facts.kernel_policy"), when it is.</param>
/// <param name="ThreadsFrom">Where the thread-count expectation is written, when it is.</param>
public sealed record SuiteFacts(string? KernelPolicy, int? OpteeThreads, string? PolicyFrom = null, string? ThreadsFrom = null)
{
    /// <summary>Policies a board can be expected to have: v6.8+ system threads, or the driver before them.</summary>
    public static IReadOnlyList<string> Policies => KernelPolicies.Known;

    /// <summary>Reads and checks the expectations; a malformed one is a <see cref="BoardFileException"/> naming file, line and field.</summary>
    public static SuiteFacts FromBoardFile(BoardSpec spec)
    {
        spec.Facts.TryGetValue("kernel_policy", out var policy);
        if (policy is not null && !Policies.Contains(policy))
            throw new BoardFileException([Error(spec, "kernel_policy", $"'{policy}' is not a policy suites know; write {string.Join(" or ", Policies)}, or leave it out (it is measured on the board)")]);
        // The loader already refused a malformed number; an absent one is simply not expected.
        return new SuiteFacts(policy, spec.OpteeThreads,
            policy is null ? null : Where(spec, "kernel_policy"), spec.OpteeThreads is null ? null : Where(spec, "optee_threads"));
    }

    /// <summary>Where an expectation is written, for facts.txt and mismatch messages.</summary>
    public static string Where(BoardSpec spec, string key) =>
        $"{spec.SourceFile}:{Locate(spec.SourceFile, key).Line}: facts.{key}";

    private static BoardFileError Error(BoardSpec spec, string key, string message)
    {
        var (line, column) = Locate(spec.SourceFile, key);
        return new BoardFileError(spec.SourceFile, line, column, "facts." + key, message);
    }

    /// <summary>Line and column of facts.KEY (or of facts:, or the file's start when absent).</summary>
    private static (int Line, int Column) Locate(string file, string key)
    {
        try
        {
            var yaml = new YamlStream();
            using (var reader = new StreamReader(file)) yaml.Load(reader);
            if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is not YamlMappingNode root) return (1, 1);
            foreach (var (k, v) in root.Children)
            {
                if (k is not YamlScalarNode { Value: "facts" }) continue;
                if (v is YamlMappingNode facts)
                    foreach (var (fk, fv) in facts.Children)
                        if (fk is YamlScalarNode { Value: var name } && name == key)
                            return ((int)fv.Start.Line, (int)fv.Start.Column);
                return ((int)k.Start.Line, (int)k.Start.Column);
            }
        }
        catch (Exception ex) when (ex is IOException or YamlDotNet.Core.YamlException)
        {
            // The loader read this file a moment ago; a location is a convenience, not worth failing for.
        }
        return (1, 1);
    }
}
