using Hil.Boards.BoardFiles;
using YamlDotNet.RepresentationModel;

namespace Hil.Suites.Common;

/// <summary>
/// What a board file promises the suites (its <c>facts:</c> section): the call-queue policy of the
/// kernel's OP-TEE driver and OP-TEE's thread count (CFG_NUM_THREADS). Both are required of every
/// board a suite runs on: a suite that judged a board by a guessed policy would judge it wrongly.
/// </summary>
public sealed record SuiteFacts(string KernelPolicy, int OpteeThreads)
{
    /// <summary>Policies a board can declare: v6.8+ system threads, or the driver before them.</summary>
    public static readonly IReadOnlyList<string> Policies = ["mainline", "legacy"];

    /// <summary>Reads and checks the facts; a mistake is a <see cref="BoardFileException"/> naming file, line and field.</summary>
    public static SuiteFacts FromBoardFile(BoardSpec spec)
    {
        var errors = new List<BoardFileError>();
        spec.Facts.TryGetValue("kernel_policy", out var policy);
        if (policy is null)
            errors.Add(Error(spec, "kernel_policy", $"missing; write the OP-TEE driver's call-queue policy: {string.Join(" or ", Policies)}"));
        else if (!Policies.Contains(policy))
            errors.Add(Error(spec, "kernel_policy", $"'{policy}' is not a policy suites know; write {string.Join(" or ", Policies)}"));
        // The loader already refused a malformed number; only its absence is left to check.
        if (spec.OpteeThreads is null)
            errors.Add(Error(spec, "optee_threads", "missing; write OP-TEE's thread count (CFG_NUM_THREADS), e.g. optee_threads: \"2\""));
        if (errors.Count > 0) throw new BoardFileException(errors);
        return new SuiteFacts(policy!, spec.OpteeThreads!.Value);
    }

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
