namespace Hil.Boards.Shell;

/// <summary>What a command printed (stdout and stderr merged, as on a console) and its exit code.</summary>
public sealed record ShellResult(string Command, int ExitCode, string Output, IReadOnlyList<string> KernelLines, TimeSpan Duration)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>Tuning of the console shell; defaults suit real UARTs, tests shorten them.</summary>
public sealed record ShellOptions
{
    /// <summary>With no frame yet and the line silent this long, ask the shell where it is (cheap, queued behind a running command).</summary>
    public TimeSpan QuietProbe { get; init; } = TimeSpan.FromMilliseconds(400);

    /// <summary>How long one resynchronisation attempt waits for its marker after an interrupt.</summary>
    public TimeSpan ResyncTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Resynchronisation attempts (Ctrl-C + fresh marker) before a full re-setup is tried.</summary>
    public int ResyncAttempts { get; init; } = 3;

    /// <summary>Resends of a corrupted output frame before the command fails as infrastructure.</summary>
    public int MaxFrameResends { get; init; } = 6;

    /// <summary>Resends of a command line that did not arrive intact before failing as infrastructure.</summary>
    public int MaxCommandResends { get; init; } = 4;

    /// <summary>After the link came back: how long the old shell gets to answer before a new login is assumed.</summary>
    public TimeSpan RecheckTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long the setup of the shell (prompt, functions) may take once a shell answers.</summary>
    public TimeSpan SetupTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>With nothing recognisable on the console for this long during login, press Enter.</summary>
    public TimeSpan LoginPoke { get; init; } = TimeSpan.FromSeconds(1.5);
}

/// <summary>What the console shell had to do to get right answers: the evidence of a noisy or lossy line.</summary>
public sealed class ShellStats
{
    public int Commands;
    public int KernelLinesRemoved;
    public int FramesResent;
    public int CommandsResent;
    public int Probes;
    public int Timeouts;
    public int Resyncs;
    public int Setups;

    public ShellStats Snapshot() => (ShellStats)MemberwiseClone();

    public override string ToString() =>
        $"commands={Commands} kernelLinesRemoved={KernelLinesRemoved} framesResent={FramesResent} commandsResent={CommandsResent} probes={Probes} timeouts={Timeouts} resyncs={Resyncs} setups={Setups}";
}
