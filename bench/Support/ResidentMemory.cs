using System.Globalization;

namespace Training.Bench.Support;

/// <summary>This process's resident set (VmRSS of /proc/self/status; elsewhere the runtime's working set).</summary>
public static class ResidentMemory
{
    public static long Bytes()
    {
        const string status = "/proc/self/status";
        if (File.Exists(status))
            foreach (var line in File.ReadLines(status))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    // "VmRSS:    123456 kB"
                    return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        return process.WorkingSet64;
    }
}
