using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Training.Bench.Support;

/// <summary>
/// A real Azurite blob service (npm <c>azurite</c>, installed by <c>make setup</c> into infra/node_modules) on a loopback
/// port, for the benchmarks and the tests (which reference this project). In memory by default; with a data folder it
/// keeps blobs there, so <see cref="Stop"/> then <see cref="Restart"/> is an outage that loses nothing, on the same port.
/// </summary>
public sealed partial class AzuriteProcess : IDisposable
{
    public const string Account = "devstoreaccount1";

    /// <summary>Azurite's well-known development key (public, documented by Microsoft), not a secret.</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly string _workingDirectory;
    private readonly string? _location;
    private Process? _process;

    private AzuriteProcess(string workingDirectory, string? location)
    {
        _workingDirectory = workingDirectory;
        _location = location;
    }

    public int Port { get; private set; }

    /// <summary>The data folder (<c>--location</c>), or null when blobs live in memory only.</summary>
    public string? Location => _location;

    public bool IsRunning => _process is { HasExited: false };

    public static string ConnectionStringFor(int port, string accountKey = AccountKey) =>
        $"DefaultEndpointsProtocol=http;AccountName={Account};AccountKey={accountKey};BlobEndpoint=http://127.0.0.1:{port}/{Account};";

    public string ConnectionString => ConnectionStringFor(Port);

    public static string Executable()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (!File.Exists(Path.Combine(dir.FullName, "Training.sln"))) continue;
                var local = Path.Combine(dir.FullName, "infra", "node_modules", ".bin", "azurite-blob");
                if (File.Exists(local)) return local;
                break;
            }
        }
        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Select(p => Path.Combine(p, "azurite-blob")).FirstOrDefault(File.Exists);
        return onPath ?? throw new InvalidOperationException("azurite-blob not found in infra/node_modules/.bin or on PATH: run `make setup`");
    }

    /// <param name="workingDirectory">Where Azurite runs (it writes its debug and lock files there).</param>
    /// <param name="port">0 for a free port chosen by Azurite.</param>
    /// <param name="location">A data folder to persist blobs in; null keeps them in memory.</param>
    public static AzuriteProcess Start(string workingDirectory, int port = 0, string? location = null)
    {
        var azurite = new AzuriteProcess(workingDirectory, location);
        azurite.Launch(port);
        return azurite;
    }

    /// <summary>Starts Azurite again after <see cref="Stop"/>, on the same port and data folder.</summary>
    public void Restart()
    {
        if (IsRunning) throw new InvalidOperationException("Azurite is still running");
        Launch(Port);
    }

    /// <summary>Stops the process (an outage: connections are refused until <see cref="Restart"/>). SIGTERM first:
    /// Azurite saves its blob index only from time to time, so a SIGKILL would lose blobs it had acknowledged.</summary>
    public void Stop()
    {
        if (_process is null) return;
        try
        {
            if (!_process.HasExited && (SendSignal(_process.Id, SigTerm) != 0 || !_process.WaitForExit(15_000)))
                _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
        _process = null;
    }

    private void Launch(int port)
    {
        var info = new ProcessStartInfo(Executable())
        {
            WorkingDirectory = _workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var storage = _location is null ? new[] { "--inMemoryPersistence" } : ["--location", _location];
        foreach (var arg in storage.Concat(["--blobHost", "127.0.0.1", "--blobPort", port.ToString(),
                     "--skipApiVersionCheck", "--loose", "--disableTelemetry"]))
            info.ArgumentList.Add(arg);
        var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start azurite-blob");
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            output.Enqueue(e.Data);
            var match = ListensOn().Match(e.Data);
            if (match.Success) listening.TrySetResult(int.Parse(match.Groups[1].Value));
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException(
            $"azurite-blob exited ({process.ExitCode}) before listening: {string.Join(" | ", output)}"));
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (Task.WaitAny([listening.Task], TimeSpan.FromSeconds(60)) < 0)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"azurite-blob did not report its port within 60 s: {string.Join(" | ", output)}");
        }
        Port = listening.Task.GetAwaiter().GetResult();
        _process = process;
    }

    public void Dispose() => Stop();

    private const int SigTerm = 15;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    [GeneratedRegex(@"listens on http://127\.0\.0\.1:(\d+)")]
    private static partial Regex ListensOn();
}
