using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace Training.Tests.Support;

/// <summary>
/// A real Azurite blob service (npm <c>azurite</c>, installed by <c>make setup</c> into infra/node_modules) on a loopback
/// port, in memory. Started with port 0 it takes a free port and reports it on its "listens on" line.
/// </summary>
public sealed partial class Azurite : IDisposable
{
    public const string Account = "devstoreaccount1";

    /// <summary>Azurite's well-known development key (public, documented by Microsoft), not a secret.</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly Process _process;
    private readonly TempDirectory _folder;

    private Azurite(Process process, TempDirectory folder, int port)
    {
        _process = process;
        _folder = folder;
        Port = port;
    }

    public int Port { get; }

    public static string ConnectionStringFor(int port, string accountKey = AccountKey) =>
        $"DefaultEndpointsProtocol=http;AccountName={Account};AccountKey={accountKey};BlobEndpoint=http://127.0.0.1:{port}/{Account};";

    public string ConnectionString => ConnectionStringFor(Port);

    /// <summary>The environment a worker would have for <c>azure://devstoreaccount1/...</c>.</summary>
    public Func<string, string?> Environment => EnvironmentFor(ConnectionString);

    public static Func<string, string?> EnvironmentFor(string connectionString) =>
        name => name == "TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING" ? connectionString : null;

    /// <summary>A loopback port nobody listens on right now.</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public static string Executable()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "Training.sln"))) continue;
            var local = Path.Combine(dir.FullName, "infra", "node_modules", ".bin", "azurite-blob");
            if (File.Exists(local)) return local;
            break;
        }
        var onPath = (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Select(p => Path.Combine(p, "azurite-blob")).FirstOrDefault(File.Exists);
        return onPath ?? throw new InvalidOperationException("azurite-blob not found in infra/node_modules/.bin or on PATH: run `make setup`");
    }

    /// <param name="port">0 for a free port chosen by Azurite.</param>
    public static Azurite Start(int port = 0)
    {
        var folder = new TempDirectory();
        var info = new ProcessStartInfo(Executable())
        {
            WorkingDirectory = folder.Path,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", port.ToString(),
                     "--skipApiVersionCheck", "--loose", "--disableTelemetry" })
            info.ArgumentList.Add(arg);
        var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start azurite-blob");
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
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
        return new Azurite(process, folder, listening.Task.GetAwaiter().GetResult());
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
        _folder.Dispose();
    }

    [GeneratedRegex(@"listens on http://127\.0\.0\.1:(\d+)")]
    private static partial Regex ListensOn();
}

/// <summary>One Azurite for every test in <c>Training.Tests.Storage.Azurite</c>, started before the first and stopped after the last.</summary>
public static class SharedAzurite
{
    private static Azurite? _instance;

    public static Azurite Instance => _instance ?? throw new InvalidOperationException("Azurite is not started (AzuriteSetUp did not run)");

    internal static void Start() => _instance ??= Azurite.Start();

    internal static void Stop()
    {
        _instance?.Dispose();
        _instance = null;
    }
}
