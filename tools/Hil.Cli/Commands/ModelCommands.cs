using System.CommandLine;
using Hil.Boards.InputFiles;
using Hil.Model.Conformance;
using Hil.Model.Core;
using Hil.Model.Execution;
using Hil.Model.Exploration;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;

namespace Hil.Cli.Commands;

/// <summary>
/// `hil model simulate|explore|check-trace FILE [--policy P] [--json]` — the reference model on
/// files. Exit 0: nothing found; 1: a finding or a divergence; 2: bad input.
/// </summary>
public static class ModelCommands
{
    static ModelCommands()
    {
        UserErrors.Register<ScenarioException>(e => e.Message);
        UserErrors.Register<TraceFormatException>(e => e.Message);
        UserErrors.Register<InputFileException>(e => e.Message);
    }

    public static Command Build()
    {
        var model = new Command("model", "The reference model of the OP-TEE call queue");
        model.Subcommands.Add(Simulate());
        model.Subcommands.Add(Explore());
        model.Subcommands.Add(CheckTrace());
        model.Subcommands.Add(Identify());
        model.Subcommands.Add(Policies());
        return model;
    }

    private static Argument<FileInfo> FileArg(string what) => new("FILE") { Description = what };

    private static Option<string?> PolicyOpt() => new("--policy", "-p")
    {
        Description = $"policy to apply instead of the file's ({Policy.Names})",
    };

    private static Option<bool> JsonOpt() => new("--json") { Description = "JSON lines instead of text" };

    private static Policy? ResolvePolicy(string? name) => name is null ? null
        : Policy.Find(name) ?? throw new ScenarioException("--policy", 0, "policy", $"unknown policy '{name}'; expected one of {Policy.Names}");

    private static Scenario LoadScenario(FileInfo file, string? policy)
    {
        // Read with a bound a little over the parser's own, so its message (in characters) is the one users see.
        var text = InputFile.ReadText(file.FullName, "scenario", ScenarioParser.MaxChars * 4L);
        return ScenarioParser.Parse(text, file.FullName, ResolvePolicy(policy));
    }

    private static Command Simulate()
    {
        var file = FileArg("scenario file (YAML)");
        var policy = PolicyOpt();
        var json = JsonOpt();
        var cmd = new Command("simulate", "Deterministic timed run: a timeline of every call's events") { file, policy, json };
        cmd.SetAction(pr =>
        {
            // The timeline streams out as the simulator makes it (nothing kept): memory stays linear in the calls.
            var scenario = LoadScenario(pr.GetValue(file)!, pr.GetValue(policy));
            var asJson = pr.GetValue(json);
            var output = Console.Out;
            if (!asJson) foreach (var line in Rendering.SimulationTextHead(scenario)) output.WriteLine(line);
            ITimelineSink sink = asJson ? new Rendering.TimelineJson(output.WriteLine) : new Rendering.TimelineText(output.WriteLine);
            var result = Simulator.Run(scenario, sink, keepEvents: false);
            foreach (var line in asJson ? Rendering.SimulationJsonTail(result) : Rendering.SimulationTextTail(result))
                output.WriteLine(line);
            return result.HasFindings ? 1 : 0;
        });
        return cmd;
    }

    private static Command Explore()
    {
        var file = FileArg("scenario file (YAML)");
        var policy = PolicyOpt();
        var json = JsonOpt();
        var max = new Option<long>("--max-states") { Description = "stop after this many states (reported as incomplete)", DefaultValueFactory = _ => 20_000_000 };
        var memory = new Option<long>("--max-memory") { Description = "stop after the kept states take this many MiB (reported as incomplete)", DefaultValueFactory = _ => 2048 };
        var cmd = new Command("explore", "Every interleaving: deadlocks, stranded waiters, broken invariants, with shortest paths") { file, policy, json, max, memory };
        cmd.SetAction(pr =>
        {
            var maxStates = pr.GetValue(max);
            if (maxStates < 1)
                throw new ScenarioException("--max-states", 0, "max-states", $"{maxStates} is not a state budget; give a whole number of at least 1");
            var scenario = LoadScenario(pr.GetValue(file)!, pr.GetValue(policy));
            if (scenario.Calls.Count > Explorer.MaxCalls)
                throw new ScenarioException(scenario.Source, 1, "clients", $"explore handles at most {Explorer.MaxCalls} calls, this scenario has {scenario.Calls.Count}; use simulate");
            var maxMemory = pr.GetValue(memory);
            if (maxMemory < 1)
                throw new ScenarioException("--max-memory", 0, "max-memory", $"{maxMemory} is not a memory budget; give a whole number of MiB, at least 1");
            var result = Explorer.Run(scenario, new ExploreOptions(maxStates, MaxMemoryMiB: maxMemory));
            foreach (var line in pr.GetValue(json) ? Rendering.ExplorationJson(result) : Rendering.ExplorationText(result))
                Console.Out.WriteLine(line);
            return result.HasFindings ? 1 : 0;
        });
        return cmd;
    }

    private static Command CheckTrace()
    {
        var file = FileArg("trace file (JSON lines, format in docs/trace-format.md)");
        var policy = PolicyOpt();
        var json = JsonOpt();
        var threads = new Option<int?>("--threads") { Description = "secure thread count (overrides the trace header)" };
        var cmd = new Command("check-trace", "Replay a board trace against the model; report the first event it forbids") { file, policy, json, threads };
        cmd.SetAction(pr =>
        {
            var f = pr.GetValue(file)!;
            if (pr.GetValue(threads) is { } n && (n < 1 || n > ScenarioParser.MaxThreads))
                throw new ScenarioException("--threads", 0, "threads", $"{n} is not a secure thread count; give 1 to {ScenarioParser.MaxThreads}");
            var options = new ConformanceOptions(ResolvePolicy(pr.GetValue(policy)), pr.GetValue(threads));
            var result = ConformanceChecker.Check(() => InputFile.OpenRead(f.FullName, "trace"), f.FullName, options);
            foreach (var line in pr.GetValue(json) ? ConformanceRendering.Json(result) : ConformanceRendering.Text(result))
                Console.Out.WriteLine(line);
            return result.Conforms ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>
    /// `hil model identify TRACE`: the trace judged under every policy — which ones it conforms to,
    /// and where each other one diverges. What a patch reviewer asks of a patched driver's trace:
    /// "which call-queue policy does this driver implement?". Exit 0 when at least one policy
    /// conforms, 1 when none does (the driver is none of the known ones), 2 for bad input.
    /// </summary>
    private static Command Identify()
    {
        var file = FileArg("trace file (JSON lines, format in docs/trace-format.md)");
        var json = JsonOpt();
        var threads = new Option<int?>("--threads") { Description = "secure thread count (overrides the trace header)" };
        var cmd = new Command("identify", "Judge a trace under every policy: which ones it conforms to") { file, json, threads };
        cmd.SetAction(pr =>
        {
            var f = pr.GetValue(file)!;
            if (pr.GetValue(threads) is { } n && (n < 1 || n > ScenarioParser.MaxThreads))
                throw new ScenarioException("--threads", 0, "threads", $"{n} is not a secure thread count; give 1 to {ScenarioParser.MaxThreads}");
            var results = Policy.All
                .Select(p => ConformanceChecker.Check(() => InputFile.OpenRead(f.FullName, "trace"), f.FullName, new ConformanceOptions(p, pr.GetValue(threads))))
                .ToList();
            var conforming = results.Where(r => r.Conforms).Select(r => r.Policy.Name).ToList();
            if (pr.GetValue(json))
            {
                foreach (var r in results)
                    Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                    {
                        type = "policy", policy = r.Policy.Name, conforms = r.Conforms, events = r.Events,
                        divergence = r.Divergence is { } d ? new { line = d.Line, task = d.Task, @event = d.Event, reason = d.Reason } : null,
                    }));
                Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { type = "result", conforms_to = conforming }));
            }
            else
            {
                Console.Out.WriteLine($"trace {f.FullName}: {results.Max(r => r.Events):N0} events, {results[0].Threads} secure thread(s)");
                foreach (var r in results)
                    Console.Out.WriteLine(r.Conforms
                        ? $"  {r.Policy.Name,-14} conforms"
                        : $"  {r.Policy.Name,-14} diverges at line {r.Divergence!.Line}: {r.Divergence.Task} {r.Divergence.Event}: {r.Divergence.Reason.Split('\n')[0]}");
                Console.Out.WriteLine(conforming.Count > 0
                    ? $"conforms to: {string.Join(", ", conforming)}"
                    : "conforms to no known policy: the driver does something none of them allows (see the first divergences above)");
            }
            return conforming.Count > 0 ? 0 : 1;
        });
        return cmd;
    }

    private static Command Policies()
    {
        var cmd = new Command("policies", "List the model's policies");
        cmd.SetAction(_ =>
        {
            foreach (var p in Policy.All) Console.Out.WriteLine($"{p.Name,-14} {p.Description}");
            return 0;
        });
        return cmd;
    }
}
