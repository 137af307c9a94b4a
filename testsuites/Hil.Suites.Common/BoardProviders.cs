namespace Hil.Suites.Common;

/// <summary>
/// The providers of one test process, one per board: fixtures of the same board share its booted
/// session. A provider closes (QEMU stops) when its last fixture releases it, unless the assembly
/// declared a <see cref="BoardsForWholeAssembly"/> set-up fixture, which keeps every session until
/// the end of the assembly. A process that exits anyway kills whatever QEMU is still running.
/// </summary>
public static class BoardProviders
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, (BoardProvider Provider, int Users)> Open = [];

    static BoardProviders()
    {
        // No QEMU may outlive the test host, even when a runner aborts it.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            List<BoardProvider> all;
            lock (Gate) all = Open.Values.Select(v => v.Provider).ToList();
            foreach (var p in all) p.KillNow();
        };
    }

    /// <summary>Set by <see cref="BoardsForWholeAssembly"/>: sessions stay up between fixtures.</summary>
    public static bool KeepForAssembly { get; set; }

    /// <summary>The provider of <paramref name="target"/> in this process (made on first use; cheap, no I/O on the board).</summary>
    public static BoardProvider Acquire(BoardTarget target, string suite)
    {
        lock (Gate)
        {
            var key = Key(target, suite);
            if (!Open.TryGetValue(key, out var entry)) entry = (new BoardProvider(target, suite), 0);
            Open[key] = (entry.Provider, entry.Users + 1);
            return entry.Provider;
        }
    }

    /// <summary>A fixture is done with its board: the last user closes it (unless kept for the assembly).</summary>
    public static async Task ReleaseAsync(BoardProvider provider)
    {
        var close = false;
        lock (Gate)
        {
            var key = Key(provider.Target, provider.Suite);
            if (!Open.TryGetValue(key, out var entry)) return;
            var users = entry.Users - 1;
            if (users > 0 || KeepForAssembly) Open[key] = (entry.Provider, Math.Max(0, users));
            else
            {
                Open.Remove(key);
                close = true;
            }
        }
        if (close) await provider.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Closes every session (end of the assembly).</summary>
    public static async Task CloseAllAsync()
    {
        List<BoardProvider> all;
        lock (Gate)
        {
            all = Open.Values.Select(v => v.Provider).ToList();
            Open.Clear();
        }
        foreach (var p in all) await p.DisposeAsync().ConfigureAwait(false);
    }

    private static string Key(BoardTarget target, string suite) => $"{suite}\n{target.Name}\n{target.BoardFile}";
}

/// <summary>
/// Optional: keeps each board's session across all fixtures of a suite assembly (one boot per board
/// instead of one per fixture) and closes them at the end. Derive once, outside any namespace:
/// <code>[SetUpFixture] public sealed class BoardsForThisAssembly : BoardsForWholeAssembly;</code>
/// </summary>
public abstract class BoardsForWholeAssembly
{
    [OneTimeSetUp]
    public void KeepBoards() => BoardProviders.KeepForAssembly = true;

    [OneTimeTearDown]
    public Task CloseBoardsAsync() => BoardProviders.CloseAllAsync();
}
