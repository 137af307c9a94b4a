using Hil.Model.Core;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Hil.Model.Scenarios;

/// <summary>
/// Reads a scenario from YAML text. The caller reads the file (the model does no I/O) and passes
/// its name, which every error message starts with.
/// </summary>
/// <example>
/// policy: mainline
/// threads: 2
/// clients:
///   - name: A
///     calls: [{ at: 0, hold: 3000 }]
///   - name: scmi
///     sessions: [{ name: clk, system: true }]
///     calls: [{ id: rate, at: 200, hold: 10 }]
/// </example>
public static class ScenarioParser
{
    public const int MaxThreads = 64;

    /// <summary>Largest scenario text read: a scenario is a small hand-written file (the biggest known ones are a few KB).</summary>
    public const int MaxChars = 4 << 20;
    /// <summary>YAML events (scalars, mappings, …) a scenario may hold: bounds parse time and memory whatever the text.</summary>
    public const int MaxYamlEvents = 2_000_000;
    public const int MaxClients = 10_000;
    /// <summary>Deepest nesting a scenario needs is 5 (clients → client → calls → call → needs); deeper is not a scenario.</summary>
    public const int MaxDepth = 32;
    /// <summary>Names (clients, sessions, call ids) appear in every timeline row: keep them readable.</summary>
    public const int MaxNameLength = 64;
    public const int MaxCallsTotal = 200_000;

    public static Scenario Parse(string yaml, string source, Policy? policyOverride = null)
    {
        if (yaml.Length > MaxChars)
            throw new ScenarioException(source, 1, "(file)", $"{yaml.Length:N0} characters: more than a scenario may have ({MaxChars:N0})");
        YamlStream stream = [];
        try
        {
            CheckShape(yaml, source);
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException ex)
        {
            throw new ScenarioException(source, ex.Start.Line, "(syntax)", ex.InnerException?.Message ?? ex.Message);
        }
        catch (ArgumentException ex)
        {
            // YamlDotNet reports a key given twice in one mapping as an ArgumentException from its dictionary.
            throw new ScenarioException(source, 1, "(syntax)", $"a key is given twice in one mapping ({ex.Message})");
        }
        if (stream.Documents.Count == 0) throw new ScenarioException(source, 1, "(file)", "empty scenario");
        var root = new YamlFields(stream.Documents[0].RootNode, source, "");
        root.AllowOnly("name", "description", "policy", "threads", "driver_threads", "clients");

        var policy = policyOverride;
        var policyName = root.String("policy");
        if (policy is null)
        {
            if (policyName is null) throw root.Error(root.Node("policy") ?? stream.Documents[0].RootNode, "policy", $"required (one of {Policy.Names}), or pass --policy");
            policy = Policy.Find(policyName) ?? throw root.Error(root.Node("policy")!, "policy", $"unknown policy '{policyName}'; expected one of {Policy.Names}");
        }
        else if (policyName is not null && Policy.Find(policyName) is null)
        {
            throw root.Error(root.Node("policy")!, "policy", $"unknown policy '{policyName}'; expected one of {Policy.Names}");
        }

        var threads = root.Int("threads", 1, MaxThreads)
            ?? throw root.Error(stream.Documents[0].RootNode, "threads", "required: the secure world's thread count (CFG_NUM_THREADS)");
        var driverThreads = root.Int("driver_threads", 0, MaxThreads);

        var clientNodes = root.Sequence("clients");
        if (clientNodes.Count == 0) throw root.Error(root.Node("clients") ?? stream.Documents[0].RootNode, "clients", "at least one client is required");

        if (clientNodes.Count > MaxClients)
            throw root.Error(root.Node("clients")!, "clients", $"{clientNodes.Count:N0} clients: at most {MaxClients:N0}");
        var clients = new List<ClientDraft>();
        var sessionId = 0;
        for (var ci = 0; ci < clientNodes.Count; ci++)
            clients.Add(ReadClient(clientNodes[ci], source, ci, ref sessionId, clients));

        // Call ids are global (client order, then op order); `needs` are resolved once all exist.
        var callId = 0;
        foreach (var c in clients)
            foreach (var op in c.Ops.Where(o => o.Kind != OpKind.Register))
                op.CallId = callId++;
        if (callId > MaxCallsTotal) throw root.Error(root.Node("clients")!, "clients", $"{callId:N0} calls: at most {MaxCallsTotal:N0}");

        var built = clients.Select(c => new ClientSpec(c.Index, c.Name, c.Sessions,
            c.Ops.Select(o => Build(o, c, clients, source)).ToList())).ToList();
        return new Scenario(root.String("name") ?? Path.GetFileNameWithoutExtension(source), root.String("description"),
            policy, threads, driverThreads, built, source);
    }

    /// <summary>
    /// One pass over the YAML events before anything is built: a scenario has one document, no
    /// aliases (a few lines of nested aliases expand to billions of nodes) and a bounded number of
    /// events, so no input can make the parser take the machine's memory or time.
    /// </summary>
    private static void CheckShape(string yaml, string source)
    {
        var parser = new YamlDotNet.Core.Parser(new StringReader(yaml));
        var events = 0;
        var documents = 0;
        var depth = 0;
        var line = 1L;
        while (Next(parser, source, line))
        {
            var e = parser.Current!;
            line = e.End.Line;
            if (++events > MaxYamlEvents)
                throw new ScenarioException(source, e.Start.Line, "(file)", $"more than {MaxYamlEvents:N0} YAML nodes: not a scenario");
            switch (e)
            {
                case YamlDotNet.Core.Events.AnchorAlias alias:
                    throw new ScenarioException(source, e.Start.Line, "(syntax)", $"alias *{alias.Value} is not allowed in a scenario (write the values out)");
                case YamlDotNet.Core.Events.DocumentStart when ++documents > 1:
                    throw new ScenarioException(source, e.Start.Line, "(file)", "a second YAML document: a scenario file holds exactly one");
                case YamlDotNet.Core.Events.SequenceStart or YamlDotNet.Core.Events.MappingStart when ++depth > MaxDepth:
                    throw new ScenarioException(source, e.Start.Line, "(syntax)", $"nested more than {MaxDepth} levels deep: not a scenario");
                case YamlDotNet.Core.Events.SequenceEnd or YamlDotNet.Core.Events.MappingEnd:
                    depth--;
                    break;
            }
        }
    }

    /// <summary>
    /// YamlDotNet's scanner throws InvalidOperationException on some malformed text (found by the
    /// scenario fuzz test: a non-ASCII letter in an unclosed flow mapping at the end of the file);
    /// that is a syntax error of the file, reported at the last line read well.
    /// </summary>
    private static bool Next(YamlDotNet.Core.Parser parser, string source, long line)
    {
        try
        {
            return parser.MoveNext();
        }
        catch (InvalidOperationException)
        {
            throw new ScenarioException(source, line, "(syntax)", "malformed YAML after this line (an unclosed [ or {?)");
        }
    }

    private enum OpKind { Invoke, Close, Register }

    private sealed class OpDraft
    {
        public required int Client;
        public required int Index;
        public required string Id;
        public required OpKind Kind;
        public required int Session;
        public required long At;
        public required long Hold;
        public required IReadOnlyList<(string Value, YamlNode Node)> Needs;
        public required YamlFields Fields;
        public int CallId = -1;
    }

    private sealed record ClientDraft(int Index, string Name, IReadOnlyList<SessionSpec> Sessions, List<OpDraft> Ops, YamlFields Fields);

    private static ClientDraft ReadClient(YamlNode node, string source, int ci, ref int sessionId, List<ClientDraft> earlier)
    {
        var f = new YamlFields(node, source, $"clients[{ci}]");
        f.AllowOnly("name", "sessions", "calls");
        var name = f.String("name") ?? $"client{ci + 1}";
        CheckName(f, "name", name);
        if (name.Contains('/')) throw f.Error(f.Node("name")!, f.Field("name"), "must not contain '/' (used in call references)");
        if (earlier.Any(c => c.Name == name)) throw f.Error(f.Node("name")!, f.Field("name"), $"duplicate client name '{name}'");

        var sessions = new List<SessionSpec>();
        var sessionNodes = f.Sequence("sessions");
        for (var si = 0; si < sessionNodes.Count; si++)
        {
            var sf = new YamlFields(sessionNodes[si], source, $"{f.Field("sessions")}[{si}]");
            sf.AllowOnly("name", "system");
            var sname = sf.String("name") ?? $"s{si + 1}";
            CheckName(sf, "name", sname);
            if (sessions.Any(s => s.Name == sname)) throw sf.Error(sf.Node("name")!, sf.Field("name"), $"duplicate session name '{sname}'");
            sessions.Add(new SessionSpec(sessionId++, sname, ci, sf.Bool("system") ?? false));
        }
        if (sessions.Count == 0) sessions.Add(new SessionSpec(sessionId++, "default", ci, false));

        var ops = new List<OpDraft>();
        var closed = new HashSet<int>();
        var callNodes = f.Sequence("calls");
        for (var oi = 0; oi < callNodes.Count; oi++)
        {
            var of = new YamlFields(callNodes[oi], source, $"{f.Field("calls")}[{oi}]");
            of.AllowOnly("id", "op", "session", "at", "hold", "needs");
            var kind = of.String("op") switch
            {
                null or "invoke" => OpKind.Invoke,
                "close" => OpKind.Close,
                "register-system" => OpKind.Register,
                var other => throw of.Error(of.Node("op")!, of.Field("op"), $"unknown op '{other}'; expected invoke, close or register-system"),
            };
            var id = of.String("id") ?? $"c{oi + 1}";
            CheckName(of, "id", id);
            if (id.Contains('/')) throw of.Error(of.Node("id")!, of.Field("id"), "must not contain '/'");
            if (ops.Any(o => o.Id == id)) throw of.Error(of.Node("id")!, of.Field("id"), $"duplicate id '{id}' in client '{name}'");
            var sessionName = of.String("session");
            var session = sessionName is null ? sessions[0]
                : sessions.FirstOrDefault(s => s.Name == sessionName)
                  ?? throw of.Error(of.Node("session")!, of.Field("session"), $"client '{name}' has no session '{sessionName}'");
            if (closed.Contains(session.Id))
                throw of.Error(of.Node("session") ?? callNodes[oi], of.Field("session"), $"session '{session.Name}' is already closed by an earlier call");
            if (kind == OpKind.Close) closed.Add(session.Id);
            var hold = of.Millis("hold");
            if (kind == OpKind.Register && (hold is not null || of.Node("needs") is not null))
                throw of.Error(of.Node("hold") ?? of.Node("needs")!, of.Field(hold is not null ? "hold" : "needs"), "register-system is not a call: no hold or needs");
            if (kind != OpKind.Register && hold is null)
                throw of.Error(callNodes[oi], of.Field("hold"), "required: milliseconds the call holds its secure thread");
            ops.Add(new OpDraft
            {
                Client = ci, Index = oi, Id = id, Kind = kind, Session = session.Id,
                At = of.Millis("at") ?? 0, Hold = hold ?? 0, Needs = of.Scalars("needs"), Fields = of,
            });
        }
        return new ClientDraft(ci, name, sessions, ops, f);
    }

    private static void CheckName(YamlFields f, string key, string value)
    {
        if (value.Length == 0) throw f.Error(f.Node(key)!, f.Field(key), "must not be empty");
        if (value.Length > MaxNameLength) throw f.Error(f.Node(key)!, f.Field(key), $"{value.Length} characters: at most {MaxNameLength}");
        if (value.Any(char.IsControl)) throw f.Error(f.Node(key)!, f.Field(key), "must not contain control characters");
    }

    private static OpSpec Build(OpDraft o, ClientDraft client, List<ClientDraft> clients, string source)
    {
        var label = $"{client.Name}/{o.Id}";
        if (o.Kind == OpKind.Register) return new RegisterSpec(o.Client, o.Index, label, o.Session, o.At);
        var needs = new List<int>();
        foreach (var (value, node) in o.Needs)
        {
            var parts = value.Split('/');
            var (cname, oid) = parts.Length == 2 ? (parts[0], parts[1]) : (client.Name, value);
            var target = clients.FirstOrDefault(c => c.Name == cname)
                ?? throw o.Fields.Error(node, o.Fields.Field("needs"), $"no client '{cname}' (write client/id)");
            var op = target.Ops.FirstOrDefault(x => x.Id == oid)
                ?? throw o.Fields.Error(node, o.Fields.Field("needs"), $"client '{cname}' has no call '{oid}'");
            if (op.Kind == OpKind.Register) throw o.Fields.Error(node, o.Fields.Field("needs"), $"'{value}' is a register-system step, not a call");
            if (target == client && op.Index >= o.Index)
                throw o.Fields.Error(node, o.Fields.Field("needs"), $"'{value}' runs after this call in the same client (a client's calls run one after another)");
            if (!needs.Contains(op.CallId)) needs.Add(op.CallId);
        }
        return new CallSpec(o.Client, o.Index, label, o.Session, o.At, o.Hold, needs, o.Kind == OpKind.Close, o.CallId, label);
    }
}
