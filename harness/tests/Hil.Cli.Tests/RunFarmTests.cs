using System.Diagnostics;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Hil.Cli.Tests;

/// <summary>
/// `hil run` of two lab boards (real processes: the CLI, its `dotnet test` children, a `hil lease
/// hold` in the way): it waits for the held board, then runs both boards at once, each board's
/// results apart, children using the parent's leases, all released at the end. The boards'
/// consoles refuse, so every test fails fast as infrastructure: what is under test is the farm
/// machinery around the suites, not the suites (CI runs those on the QEMU boards).
/// </summary>
[NonParallelizable]
public sealed class RunFarmTests
{
    [Test]
    public async Task HilRunOfTwoLabBoards_WaitsForTheHeldOne_ThenRunsBothAtOnce_EachBoardsResultsApart()
    {
        var dir = Directory.CreateTempSubdirectory("hil-run-farm-").FullName;
        try
        {
            var leases = Path.Combine(dir, "leases");
            var results = Path.Combine(dir, "results");
            var tag = Guid.NewGuid().ToString("N")[..6];
            var (a, b) = ($"farm-a-{tag}", $"farm-b-{tag}");
            var (fa, fb) = (LeaseCliTests.LabBoardFile(dir, a), LeaseCliTests.LabBoardFile(dir, b));

            using var holder = HilProcess.Start(leases, "lease", "hold", a, "--for", "4", "--wait", "0");
            await holder.LineAsync("holding", TimeSpan.FromSeconds(60));
            var clock = Stopwatch.StartNew();
            using var run = HilProcess.Start(leases, "run", "--board", fb, "--board", fa, "--suite", "smoke", "--lease-wait", "120", "--results", results);
            var code = await run.ExitAsync(TimeSpan.FromMinutes(4));
            TestContext.Out.WriteLine($"hil run of two lab boards: {clock.Elapsed.TotalSeconds:0} s");
            Assert.That(code, Is.EqualTo(1), run.All);
            var log = File.ReadAllLines(Path.Combine(results, "run.log"));
            string Log() => string.Join("\n", log);

            // It waited for the held board, named its holder, and took it once released.
            int At(string pattern) => Array.FindIndex(log, l => Regex.IsMatch(l, pattern));
            Assert.That(At($@"board {a} is leased by .*pid {holder.Pid} until .*: waiting up to"), Is.GreaterThanOrEqualTo(0), Log());
            Assert.That(At($"board {a}: lease taken by "), Is.GreaterThan(At($"board {a} is leased by ")), Log());
            Assert.That(await holder.ExitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(0), holder.All);

            // Both boards' suites started before either finished: at once, not one after the other.
            var started = new[] { At($"running suite smoke on {a}$"), At($"running suite smoke on {b}$") };
            var finished = new[] { At($"suite smoke on {a} finished"), At($"suite smoke on {b} finished") };
            Assert.That(started, Has.All.GreaterThanOrEqualTo(0), Log());
            Assert.That(finished, Has.All.GreaterThanOrEqualTo(0), Log());
            Assert.That(started.Max(), Is.LessThan(finished.Min()), Log());

            // Each board's results apart, each holding only its own board's tests; the merged file has both.
            foreach (var (mine, other) in new[] { (a, b), (b, a) })
            {
                var nunit = File.ReadAllText(Path.Combine(results, mine, "smoke.nunit.xml"));
                Assert.That(nunit, Does.Contain($"({mine})").And.Not.Contain(other));
                Assert.That(Path.Combine(results, mine, "smoke.junit.xml"), Does.Exist);
                Assert.That(Directory.EnumerateFiles(Path.Combine(results, mine, "trx"), "*.trx"), Is.Not.Empty);
                var harnessLog = File.ReadAllText(Path.Combine(results, mine, "smoke", "harness.log"));
                Assert.That(harnessLog, Does.Not.Contain(other));
                // The child used the parent's lease: taking its own would have waited for the parent.
                Assert.That(harnessLog, Does.Not.Contain("lease taken"));
                Assert.That(run.Out, Has.Exactly(1).Match($@"^board {mine}: 0 passed \(0 on retry\), [1-9]\d* failed, 0 not run; busy from "), run.All);
            }
            var merged = XDocument.Load(Path.Combine(results, "smoke.junit.xml"));
            Assert.That(merged.Descendants("testcase").Select(t => (string?)t.Attribute("classname") ?? ""),
                Has.Some.Contains($"({a})").And.Some.Contains($"({b})"));
            Assert.That(merged.Root!.Elements("testsuite").Select(e => (string?)e.Attribute("name")),
                Is.EquivalentTo(new[] { $"Hil.Suites.Smoke.dll ({a})", $"Hil.Suites.Smoke.dll ({b})" }));
            Assert.That(run.Out.Last(), Does.StartWith("results: "), run.All);
            Assert.That(Directory.EnumerateFiles(leases, "*.lease"), Is.Empty, "the run released its leases");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public async Task SuiteRunDirectly_OnALabBoard_TakesItsOwnLease_AndReleasesIt()
    {
        // No hil run around it: the suite's BoardProvider leases the board itself (SuiteLeases).
        var dir = Directory.CreateTempSubdirectory("hil-suite-lease-").FullName;
        try
        {
            var board = $"farm-d-{Guid.NewGuid().ToString("N")[..6]}";
            var file = LeaseCliTests.LabBoardFile(dir, board);
            var (leases, results) = (Path.Combine(dir, "leases"), Path.Combine(dir, "results"));
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "test", CliHarness.Repo("testsuites", "Hil.Suites.Smoke", "Hil.Suites.Smoke.csproj"), "-c", "Release", "--no-build",
                         "--filter", "FullyQualifiedName~LoginOverSerial_ConsoleShellIsRoot" })
                psi.ArgumentList.Add(a);
            psi.Environment["HIL_BOARDS"] = file;
            psi.Environment["HIL_RESULTS"] = results;
            psi.Environment["HIL_LEASES"] = leases;
            psi.Environment.Remove("HIL_LEASE_TOKENS");
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEndAsync();
            var errors = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await p.WaitForExitAsync(cts.Token);
            var all = await output + await errors;
            Assert.That(p.ExitCode, Is.Not.EqualTo(0), all); // the console refuses: the test fails, as infrastructure
            var harnessLog = File.ReadAllText(Path.Combine(results, board, "smoke", "harness.log"));
            Assert.That(harnessLog, Does.Contain($"board {board}: lease taken by {Hil.Boards.Leases.BoardLease.DefaultOwner}@{Environment.MachineName} pid "), harnessLog);
            Assert.That(harnessLog, Does.Contain("is not reachable"), "it went on to use the board once leased");
            // Released when the board's provider closed, not left to the process-exit hook (a test host may be killed first).
            Assert.That(harnessLog, Does.Contain($"board {board}: lease released by "), harnessLog);
            Assert.That(Path.Combine(leases, board + ".lease"), Does.Not.Exist);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
