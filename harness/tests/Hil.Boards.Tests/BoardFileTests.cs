using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;

namespace Hil.Boards.Tests;

/// <summary>Board files: what loads, and that every mistake is reported with file, line and field.</summary>
[TestFixture]
public sealed class BoardFileTests : BoardTest
{
    private static string RepoFile(params string[] parts)
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HilHarness.sln"))) dir = dir.Parent;
        return Path.Combine([dir!.FullName, .. parts]);
    }

    [Test, NonParallelizable]
    public void The_example_real_board_file_loads_with_everything_resolved()
    {
        // The example names its console password as an environment variable; it must be set to load.
        var before = Environment.GetEnvironmentVariable("HIL_RPI3_ROOT_PASSWORD");
        Environment.SetEnvironmentVariable("HIL_RPI3_ROOT_PASSWORD", null);
        var unset = Assert.Throws<BoardFileException>(() => BoardFileLoader.Load(RepoFile("boards", "example-rpi3.yaml")));
        Assert.That(unset!.Message, Does.Contain("login.password.env: environment variable HIL_RPI3_ROOT_PASSWORD is not set"));
        Environment.SetEnvironmentVariable("HIL_RPI3_ROOT_PASSWORD", "not-a-real-password");
        BoardSpec spec;
        try { spec = BoardFileLoader.Load(RepoFile("boards", "example-rpi3.yaml")); }
        finally { Environment.SetEnvironmentVariable("HIL_RPI3_ROOT_PASSWORD", before); }
        using (Assert.EnterMultipleScope())
        {
            Assert.That(spec.Name, Is.EqualTo("rpi3-lab1"));
            Assert.That(spec.Console!.Kind, Is.EqualTo(ConsoleKind.SerialDevice));
            Assert.That(spec.Console.TxChunk, Is.EqualTo(64));
            Assert.That(spec.Console.TxDelay, Is.EqualTo(TimeSpan.FromMilliseconds(2)));
            Assert.That(spec.Ssh!.HostKeys, Has.Count.EqualTo(1));
            Assert.That(spec.Ssh.KeyFile, Does.EndWith("/.ssh/hil_lab_ed25519").And.Not.StartWith("~"));
            Assert.That(spec.Power.Driver, Is.EqualTo("pdudaemon"));
            Assert.That(spec.Boot.Bootloader!.Interrupt!.Commands, Is.EqualTo(new[] { "run bootcmd_mmc0" }));
            Assert.That(spec.Login.Password!.EnvVar, Is.EqualTo("HIL_RPI3_ROOT_PASSWORD"));
            Assert.That(spec.OpteeThreads, Is.EqualTo(4));
        }
    }

    [Test]
    public void Console_addresses_tcp_unix_and_file_are_understood()
    {
        using var ws = new Workspace();
        var spec = ws.Board("""
            name: b
            console: { device: "tcp://ser2net.lab:7001" }
            secure_console: { device: "file:secure.log" }
            """);
        Assert.That((spec.Console!.Kind, spec.Console.Host, spec.Console.Port), Is.EqualTo((ConsoleKind.Tcp, "ser2net.lab", 7001)));
        Assert.That(spec.SecureConsole!.Address, Is.EqualTo(Path.Combine(ws.Dir, "secure.log")));
        var unix = ws.Board("name: u\nconsole: { device: \"unix:/run/q/console.sock\" }\n", "u.yaml");
        Assert.That((unix.Console!.Kind, unix.Console.Address), Is.EqualTo((ConsoleKind.UnixSocket, "/run/q/console.sock")));
    }

    [Test]
    public void Every_mistake_is_reported_with_file_line_and_field()
    {
        using var ws = new Workspace();
        var path = ws.Write("bad.yaml", """
            name: bad board
            consle:
              device: /dev/ttyUSB0
            ssh:
              host: 10.0.0.2
              user: root
              password: hunter2
              connect_timeout: soon
            login:
              login_prompt: "login: ("
            power:
              driver: relay-magic
            facts:
              optee_threads: many
            """);
        var ex = Assert.Throws<BoardFileException>(() => BoardFileLoader.Load(path));
        var errors = ex!.Errors.Select(e => $"{e.Line}:{e.Field}").ToList();
        TestContext.Out.WriteLine(ex.Message);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(errors, Does.Contain("1:name"));
            Assert.That(ex.Errors.Single(e => e.Field == "consle").Message, Does.Contain("did you mean 'console'"));
            Assert.That(errors, Does.Contain("2:consle"));
            Assert.That(ex.Errors.Single(e => e.Field == "ssh.password").Message, Does.Contain("never written inline"));
            Assert.That(errors, Does.Contain("7:ssh.password"));
            Assert.That(errors, Does.Contain("8:ssh.connect_timeout"));
            Assert.That(ex.Errors.Any(e => e.Field == "ssh" && e.Message.Contains("host keys are always verified")), Is.True);
            Assert.That(errors, Does.Contain("10:login.login_prompt"));
            Assert.That(errors, Does.Contain("12:power.driver"));
            Assert.That(errors, Does.Contain("14:facts.optee_threads"));
            Assert.That(ex.Errors.All(e => e.File == path), Is.True);
            Assert.That(ex.Class, Is.EqualTo(FailureClass.Test));
            // The message is for people: one line per error, no stack trace, and never the secret.
            Assert.That(ex.Message, Does.Contain($"{path}:7:"));
            Assert.That(ex.Message, Does.Not.Contain("hunter2"));
        }
    }

    [Test]
    public void A_yaml_syntax_error_names_its_line()
    {
        using var ws = new Workspace();
        var path = ws.Write("syntax.yaml", "name: x\nconsole:\n  device: [unclosed\n  baud: 9600\n");
        var ex = Assert.Throws<BoardFileException>(() => BoardFileLoader.Load(path));
        Assert.That(ex!.Errors.Single().Field, Is.EqualTo("(syntax)"));
        Assert.That(ex.Errors.Single().Line, Is.GreaterThanOrEqualTo(3));
    }

    [Test]
    public void A_board_without_links_or_with_half_a_power_setup_is_refused()
    {
        using var ws = new Workspace();
        var ex = Assert.Throws<BoardFileException>(() => ws.Board("name: lonely\nfacts: { soc: x }\n"));
        Assert.That(ex!.Message, Does.Contain("at least one link"));
        var p = Assert.Throws<BoardFileException>(() => ws.Board("name: p\nconsole: { device: /dev/ttyS0 }\npower:\n  driver: command\n  on: [relay, on]\n", "p.yaml"));
        Assert.That(p!.Errors.Single().Message, Does.Contain("give both on and off"));
        Assert.That(p.Errors.Single().Line, Is.EqualTo(4));
        var missing = Assert.Throws<BoardFileException>(() => BoardFileLoader.Load(Path.Combine(ws.Dir, "nope.yaml")));
        Assert.That(missing!.Message, Does.Contain("does not exist"));
    }

    [Test]
    public void Secrets_resolve_from_environment_or_file_and_name_the_source_when_missing()
    {
        using var ws = new Workspace();
        var pwFile = ws.Write("pw", "s3cret\n");
        var spec = ws.Board($"""
            name: s
            console: {"{"} device: /dev/ttyS0 {"}"}
            login:
              user: root
              password: {"{"} file: {pwFile} {"}"}
            """);
        Assert.That(spec.Login.Password!.Resolve(), Is.EqualTo("s3cret"));
        var env = new SecretRef("HIL_TEST_SURELY_UNSET_VARIABLE", null);
        var ex = Assert.Throws<TestErrorException>(() => env.Resolve());
        Assert.That(ex!.Message, Does.Contain("HIL_TEST_SURELY_UNSET_VARIABLE"));
    }
}
