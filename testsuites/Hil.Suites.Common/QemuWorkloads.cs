using Hil.Qemu.Board;
using Hil.Qemu.Provisioning;
using Hil.Workloads.Tracing;
using Hil.Workloads.Tracing.Module;
using Serilog;

namespace Hil.Suites.Common;

/// <summary>
/// The workloads' QEMU-specific entry points, kept here where the QEMU board is known (Hil.Workloads
/// does not reference Hil.Qemu): called as before, CallQueueTracing.ForQemu and OpteeModuleFile.FromQemuImage.
/// </summary>
public static class QemuWorkloads
{
    extension(CallQueueTracing)
    {
        /// <summary>Tracing on a QEMU board: the optee.ko comes from the board's image, not over SSH.</summary>
        public static CallQueueTracing ForQemu(QemuBoardSession session, ILogger logger) => new(session.Board, logger)
        {
            ModuleSource = (work, _) => Task.FromResult(OpteeModuleFile.FromQemuImage(session.Image, work)),
        };
    }

    extension(OpteeModuleFile)
    {
        /// <summary>
        /// The module a provisioned QEMU image boots with, taken from its initramfs (the image carries the
        /// kernel's own modules, uncompressed, under usr/lib/modules/RELEASE/).
        /// </summary>
        public static OpteeModuleFile FromQemuImage(ProvisionedImage image, string workDirectory) =>
            OpteeModuleFile.FromInitramfs(image.Initrd, image.KernelRelease,
                Path.Combine(workDirectory, $"optee-{image.Board}-{image.CacheKey}.ko"), $"{image.Board} image {image.CacheKey} (initramfs)");
    }
}
