using System.Diagnostics;
using NUnit.Framework;

namespace Training.Tests.Support;

public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public string Output => Stdout + Stderr;
}

/// <summary>Runs the real <c>orchestrator</c> program as a child process, as a user would.</summary>
public static class CliProcess
{
    private static string OrchestratorDll => Path.Combine(TestContext.CurrentContext.TestDirectory, "orchestrator.dll");

    public static Process Start(string workingDirectory, params string[] args) => Start(workingDirectory, null, args);

    /// <param name="environment">Variables added to the child's environment (and so to the local workers it starts).</param>
    public static Process Start(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(OrchestratorDll);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("ORCHESTRATOR_RUNS");
        info.Environment.Remove("ORCHESTRATOR_API_TOKEN");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        return Process.Start(info) ?? throw new InvalidOperationException("could not start orchestrator");
    }

    public static async Task<CliResult> RunAsync(string workingDirectory, params string[] args)
    {
        using var process = Start(workingDirectory, args);
        return await FinishAsync(process, TimeSpan.FromMinutes(3));
    }

    public static async Task<CliResult> FinishAsync(Process process, TimeSpan timeout)
    {
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"orchestrator did not finish within {timeout}: {await stdout}{await stderr}");
        }
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }
}
