using Hil.Boards.Shell;
using Hil.Workloads.Kmod;

namespace Hil.Workloads.Tests;

/// <summary>The C# side of the module's command language: lines, validation, and the shell that carries them.</summary>
public class KmodCommandTests
{
    [Test]
    public void CommandsRenderTheLinesTheModuleParses()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(KmodCommand.Open("a", SessionKind.Normal).Line, Is.EqualTo("open a normal"));
            Assert.That(KmodCommand.Open("sys_1", SessionKind.System).Line, Is.EqualTo("open sys_1 system"));
            Assert.That(KmodCommand.Close("a").Line, Is.EqualTo("close a"));
            Assert.That(KmodCommand.Call("a", 0, 300).Line, Is.EqualTo("call a 0 300"));
            Assert.That(KmodCommand.Call("b-2", 600_000, 60_000).Line, Is.EqualTo("call b-2 600000 60000"));
            Assert.That(KmodCommand.Go().Line, Is.EqualTo("go"));
            Assert.That(KmodCommand.Go(250).Line, Is.EqualTo("go 250"));
            Assert.That(KmodCommand.Cancel.Line, Is.EqualTo("cancel"));
            Assert.That(KmodCommand.Reset.Line, Is.EqualTo("reset"));
            Assert.That(new KmodCall("a", 5, 6).Command.Line, Is.EqualTo("call a 5 6"));
        }
    }

    [TestCase("")]
    [TestCase("sixteen-chars-xx")]
    [TestCase("bad/name")]
    [TestCase("a b")]
    [TestCase("x;reboot")]
    [TestCase("ünï")]
    public void BadSessionNamesAreRefusedBeforeReachingABoard(string name)
    {
        Assert.Throws<ArgumentException>(() => KmodCommand.Open(name, SessionKind.Normal));
        Assert.Throws<ArgumentException>(() => KmodCommand.Call(name, 0, 1));
        Assert.Throws<ArgumentException>(() => KmodCommand.Close(name));
    }

    [Test]
    public void LimitsMatchTheModule()
    {
        Assert.That(() => KmodCommand.Call("a", KmodLimits.MaxStartMs + 1, 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => KmodCommand.Call("a", 0, KmodLimits.MaxHoldMs + 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => KmodCommand.Go(KmodLimits.MaxLeadMs + 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => KmodCommand.Open("a", (SessionKind)7), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(KmodCommand.Call("a", KmodLimits.MaxStartMs, KmodLimits.MaxHoldMs).Line, Is.EqualTo("call a 600000 60000"));
        // The module's own limits, read from its source: the two sides must not drift apart.
        var source = File.ReadAllText(Path.Combine(KmodTestSupport.RepoRoot, "tools/kmod/hil_cq.c"));
        Assert.That(source, Does.Contain($"#define MAX_HOLD_MS {KmodLimits.MaxHoldMs}U"));
        Assert.That(source, Does.Contain($"#define MAX_START_MS {KmodLimits.MaxStartMs}U"));
        Assert.That(source, Does.Contain($"#define MAX_LEAD_MS {KmodLimits.MaxLeadMs}U"));
        Assert.That(source, Does.Contain($"#define MAX_SESSIONS {KmodLimits.MaxSessions}"));
        Assert.That(source, Does.Contain($"#define MAX_RECORDS {KmodLimits.MaxRecords}"));
    }

    [Test]
    public void StallsRenderTheirSiteAndRefuseWhatTheModuleRefuses()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(KmodCommand.Stall("optee_cq_wait_for_completion", 0x30, 15_000).Line, Is.EqualTo("stall optee_cq_wait_for_completion+0x30 15000"));
            Assert.That(KmodCommand.StallOff.Line, Is.EqualTo("stall off"));
            Assert.That(() => KmodCommand.Stall("f;reboot", 0, 1), Throws.ArgumentException);
            Assert.That(() => KmodCommand.Stall("", 0, 1), Throws.ArgumentException);
            Assert.That(() => KmodCommand.Stall("f", -4, 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => KmodCommand.Stall("f", 0, 0), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => KmodCommand.Stall("f", 0, KmodLimits.MaxStallUs + 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        }
    }

    [Test]
    public void TheSendScriptQuotesEveryLine()
    {
        var script = KmodDriver.SendScript(["open a normal", "call x'; reboot; echo ' 0 1", "go"]);
        Assert.That(script, Does.Contain("for c in 'open a normal' 'call x'\\''; reboot; echo '\\'' 0 1' go; do"));
        Assert.That(script, Does.Contain("printf '%s\\n' \"$c\" > \"$d/ctl\""), "one write per command");
        Assert.That(script, Does.Contain("e=$(cat \"$d/error\"); printf 'hil-rejected\\t%s\\n' \"$e\"; rc=3; break;"), "a rejection reports the module's reason and stops");
        Assert.That(KmodDriver.SendScript(["x"], keepGoing: true), Does.Not.Contain("break"));
    }

    [Test]
    public void RejectionsClassifyByErrno()
    {
        var misuse = new KmodCommandRejectedException("call x 0 1", "ENOENT", "call: no open session 'x' (open it first)");
        var teeFailed = new KmodCommandRejectedException("open a normal", "EIO", "open: os_test session failed");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(misuse.Class, Is.EqualTo(Hil.Boards.Failures.FailureClass.Test));
            Assert.That(teeFailed.Class, Is.EqualTo(Hil.Boards.Failures.FailureClass.Product));
            Assert.That(misuse.Message, Is.EqualTo("hil_cq rejected 'call x 0 1': call: no open session 'x' (open it first) [ENOENT]"));
        }
    }

    [Test]
    public void ShellUploadChunksAndVerifies()
    {
        var content = new byte[100_000];
        new Random(7).NextBytes(content);
        var commands = BoardUpload.ShellCommands(content, "/tmp/hil/my file.ko", "644");
        var chunks = commands.Count(c => c.Contains("base64 -d >>", StringComparison.Ordinal));
        Assert.That(chunks, Is.EqualTo((int)Math.Ceiling(Convert.ToBase64String(content).Length / (double)BoardUpload.ChunkChars)));
        Assert.That(commands.All(c => c.Length < BoardUpload.MaxCommandLength), "each command fits dropbear's 9000-byte command limit");
        Assert.That(commands[^1], Does.Contain(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content))));
        Assert.That(commands[^1], Does.Contain("mv -f '/tmp/hil/my file.ko.part' '/tmp/hil/my file.ko'"));
        var rebuilt = string.Concat(commands.Where(c => c.StartsWith("printf %s ", StringComparison.Ordinal))
            .Select(c => c["printf %s ".Length..c.IndexOf(" | base64", StringComparison.Ordinal)].Trim('\'')));
        Assert.That(Convert.FromBase64String(rebuilt), Is.EqualTo(content));
    }

    [Test]
    public void MakeArgumentsAreAnArgumentVectorWithTheKitsVariables()
    {
        var kit = new Hil.Kernel.ModuleKit
        {
            KernelRelease = "6.12.118+deb13-arm64",
            HeadersDirectory = "/cache/kits/x/root/usr/src/linux-headers-6.12.118+deb13-arm64",
            MakeVariables = new Dictionary<string, string>
            {
                ["ARCH"] = "arm64", ["CROSS_COMPILE"] = "aarch64-linux-gnu-", ["CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT"] = "",
            },
        };
        var args = KmodBuilder.MakeArguments(kit, "/tmp/a dir/with 'quote'");
        Assert.That(args, Is.EqualTo(new[]
        {
            "-C", kit.HeadersDirectory, "M=/tmp/a dir/with 'quote'", "ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-",
            "CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT=", "modules",
        }));
        Assert.That(KmodBuilder.ToolPrefix(kit), Is.EqualTo("aarch64-linux-gnu-"));
        Assert.That(ShellQuote.Join(args), Does.Contain("'M=/tmp/a dir/with '\\''quote'\\'''"), "as a person would retype it");
    }
}
