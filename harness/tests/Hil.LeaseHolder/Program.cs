// Takes one board lease and reports on stdout, one line each, what happened, for LeaseTests:
//   TAKEN <unix ms> <token> | RELEASED <unix ms> | LOST <reason> | ERROR <class> <message>
// Usage: Hil.LeaseHolder BOARD FOLDER OWNER TTL_MS WAIT_MS HOLD_MS [GO_FILE]
//   HOLD_MS -1 holds until killed; GO_FILE: wait until that file exists before taking (so that
//   two holders race from the same instant). The lease's own log lines go to stderr.
using System.Globalization;
using Hil.Boards.Failures;
using Hil.Boards.Leases;
using Serilog;

if (args.Length is < 6 or > 7)
{
    Console.Error.WriteLine("usage: Hil.LeaseHolder BOARD FOLDER OWNER TTL_MS WAIT_MS HOLD_MS [GO_FILE]");
    return 64;
}
var (board, folder, owner) = (args[0], args[1], args[2]);
var ttl = TimeSpan.FromMilliseconds(int.Parse(args[3], CultureInfo.InvariantCulture));
var wait = TimeSpan.FromMilliseconds(int.Parse(args[4], CultureInfo.InvariantCulture));
var hold = int.Parse(args[5], CultureInfo.InvariantCulture);
using var log = new LoggerConfiguration().MinimumLevel.Debug()
    .WriteTo.Console(standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose, outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}")
    .CreateLogger();

if (args.Length == 7)
{
    Console.Out.WriteLine("READY");
    Console.Out.Flush();
    while (!File.Exists(args[6])) Thread.Sleep(1);
}

static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

try
{
    await using var lease = await BoardLease.TakeAsync(board, folder, owner, ttl, wait, log, CancellationToken.None);
    Console.Out.WriteLine($"TAKEN {Now()} {lease.Token}");
    Console.Out.Flush();
    try
    {
        await Task.Delay(hold, lease.Lost);
    }
    catch (OperationCanceledException)
    {
        Console.Out.WriteLine($"LOST {lease.LostReason}");
        return 3;
    }
    // Stamped before the release: the next holder cannot take the board before this instant.
    Console.Out.WriteLine($"RELEASED {Now()}");
}
catch (HilException ex)
{
    Console.Out.WriteLine($"ERROR {ex.Class} {ex.Message}");
    return 2;
}
return 0;
