using System.Runtime;
using System.Runtime.InteropServices;

namespace Training.Worker.Training;

/// <summary>
/// Gives a finished trial's memory back to the operating system, so a worker that runs trial after trial stays at the
/// size of one trial. Two things otherwise keep it: managed garbage (checkpoint buffers, parquet pages, host copies of
/// tensors) that no collection has needed to reclaim yet, and the native memory libtorch freed, which glibc keeps in
/// its per-thread arenas (every trial trains on a fresh thread) instead of returning it.
/// </summary>
public static class ProcessMemory
{
    /// <summary>Collects (compacting the large object heap once), runs finalizers, and on Linux trims glibc's heap.</summary>
    public static void ReleaseAfterTrial()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            MallocTrim(0);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc (musl, for example): nothing to trim.
        }
    }

    /// <summary>This process's resident set size in bytes (VmRSS), or null where /proc is not available.</summary>
    public static long? ResidentBytes()
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path)) return null;
        foreach (var line in File.ReadLines(path))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)
                && long.TryParse(line["VmRSS:".Length..].Trim().Split(' ')[0], out var kilobytes))
                return kilobytes * 1024;
        return null;
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);
}
