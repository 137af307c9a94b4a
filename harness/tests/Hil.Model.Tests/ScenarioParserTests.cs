using Hil.Model.Core;
using Hil.Model.Scenarios;

namespace Hil.Model.Tests;

/// <summary>Bad scenario files name file, line and field; good ones read as written.</summary>
public class ScenarioParserTests
{
    private static ScenarioException Bad(string yaml) =>
        Assert.Throws<ScenarioException>(() => ScenarioParser.Parse(yaml, "bad.yaml"))!;

    [Test]
    public void Reads_clients_sessions_calls_and_dependencies()
    {
        var sc = ScenarioParser.Parse("""
            name: demo
            policy: mainline
            threads: 2
            clients:
              - name: app
                sessions: [{ name: s }]
                calls:
                  - { id: a, at: 1.5, hold: 2 }
                  - { id: b, hold: 3, needs: [scmi/clk] }
                  - { op: close, session: s, hold: 0.5 }
              - name: scmi
                sessions: [{ name: clocks, system: true }]
                calls:
                  - { id: clk, at: 0, hold: 1 }
            """, "demo.yaml");
        Assert.That(sc.Policy, Is.EqualTo(Policy.Mainline));
        Assert.That(sc.Calls.Select(c => c.Name), Is.EqualTo(new[] { "app/a", "app/b", "app/c3", "scmi/clk" }));
        Assert.That(sc.Calls[0].At, Is.EqualTo(1500));
        Assert.That(sc.Calls[1].Needs, Is.EqualTo(new[] { 3 }));
        Assert.That(sc.Calls[2].IsClose, Is.True);
        Assert.That(sc.Sessions.Select(s => (s.Name, s.System)), Is.EqualTo(new[] { ("s", false), ("clocks", true) }));
        Assert.That(sc.DriverTotal, Is.EqualTo(2));
    }

    [Test]
    public void Unknown_policy_names_line_and_field()
    {
        var ex = Bad("threads: 2\npolicy: mainlne\nclients: [{ calls: [{ hold: 1 }] }]\n");
        Assert.That(ex.Message, Is.EqualTo("bad.yaml:2: policy: unknown policy 'mainlne'; expected one of legacy, v9, mainline, mainline-fifo, ffa"));
    }

    [Test]
    public void Typo_in_a_field_is_refused_not_ignored()
    {
        var ex = Bad("policy: v9\nthreads: 2\nclients:\n  - name: a\n    calls:\n      - { hodl: 3 }\n");
        Assert.That((ex.Line, ex.Field), Is.EqualTo((6L, "clients[0].calls[0].hodl")));
        Assert.That(ex.Problem, Does.StartWith("unknown field"));
    }

    [TestCase("policy: v9\nclients: [{ calls: [{ hold: 1 }] }]\n", 1, "threads", "required")]
    [TestCase("policy: v9\nthreads: 0\nclients: [{ calls: [{ hold: 1 }] }]\n", 2, "threads", "out of range")]
    [TestCase("policy: v9\nthreads: two\nclients: [{ calls: [{ hold: 1 }] }]\n", 2, "threads", "not a whole number")]
    [TestCase("policy: v9\nthreads: 2\nclients: []\n", 3, "clients", "at least one client")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls:\n    - { at: 1 }\n", 5, "clients[0].calls[0].hold", "required")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls:\n    - { hold: -1 }\n", 5, "clients[0].calls[0].hold", "negative")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls:\n    - { hold: 1, needs: [x/y] }\n", 5, "clients[0].calls[0].needs", "no client 'x'")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls:\n    - { id: a, hold: 1, needs: [b] }\n    - { id: b, hold: 1 }\n", 5, "clients[0].calls[0].needs", "runs after this call")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls:\n    - { id: a, hold: 1 }\n    - { id: a, hold: 1 }\n", 6, "clients[0].calls[1].id", "duplicate id")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls:\n    - { hold: 1, session: nope }\n", 5, "clients[0].calls[0].session", "no session 'nope'")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls:\n    - { op: close, hold: 1 }\n    - { hold: 1 }\n", 6, "clients[0].calls[1].session", "already closed")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls:\n    - { op: dance, hold: 1 }\n", 5, "clients[0].calls[0].op", "unknown op")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - sessions: [{ system: maybe }]\n    calls: [{ hold: 1 }]\n", 4, "clients[0].sessions[0].system", "not true or false")]
    [TestCase("policy: v9\nthreads: 2\nclients:\n  - calls: [{ hold: 1 }\n", 5, "(syntax)", "")]
    public void Bad_input_is_reported_with_line_and_field(string yaml, int line, string field, string problem)
    {
        var ex = Bad(yaml);
        Assert.That((ex.Line, ex.Field), Is.EqualTo(((long)line, field)), ex.Message);
        Assert.That(ex.Problem, Does.Contain(problem));
        Assert.That(ex.Message, Does.StartWith($"bad.yaml:{line}: {field}: "));
    }

    [Test]
    public void Policy_given_on_the_command_line_overrides_the_file()
    {
        var sc = ScenarioParser.Parse("policy: legacy\nthreads: 2\nclients: [{ calls: [{ hold: 1 }] }]\n", "x.yaml", Policy.V9);
        Assert.That(sc.Policy, Is.EqualTo(Policy.V9));
        Assert.That(sc.DriverTotal, Is.EqualTo(2));
        Assert.That(sc.WithPolicy(Policy.Legacy).DriverTotal, Is.Zero, "legacy does not count");
    }
}
