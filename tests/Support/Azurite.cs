using System.Net;
using System.Net.Sockets;
using Training.Bench.Support;

namespace Training.Tests.Support;

/// <summary>
/// A real Azurite blob service on a loopback port (the launcher is <see cref="AzuriteProcess"/>, shared with the
/// benchmarks). In memory by default; <see cref="StartPersistent"/> keeps blobs in a folder, so <see cref="Stop"/> and
/// <see cref="Restart"/> make an outage that loses nothing, on the same port.
/// </summary>
public sealed class Azurite : IDisposable
{
    public const string Account = AzuriteProcess.Account;

    /// <summary>Azurite's well-known development key (public, documented by Microsoft), not a secret.</summary>
    public const string AccountKey = AzuriteProcess.AccountKey;

    private readonly AzuriteProcess _process;
    private readonly TempDirectory _folder;

    private Azurite(AzuriteProcess process, TempDirectory folder)
    {
        _process = process;
        _folder = folder;
    }

    public int Port => _process.Port;

    public static string ConnectionStringFor(int port, string accountKey = AccountKey) => AzuriteProcess.ConnectionStringFor(port, accountKey);

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

    public static string Executable() => AzuriteProcess.Executable();

    /// <param name="port">0 for a free port chosen by Azurite.</param>
    public static Azurite Start(int port = 0)
    {
        var folder = new TempDirectory();
        return new Azurite(AzuriteProcess.Start(folder.Path, port), folder);
    }

    /// <summary>Azurite keeping its blobs in a temporary folder (<c>--location</c>), for tests that stop and restart it.</summary>
    public static Azurite StartPersistent()
    {
        var folder = new TempDirectory();
        var data = folder.Combine("data");
        Directory.CreateDirectory(data);
        return new Azurite(AzuriteProcess.Start(folder.Path, 0, data), folder);
    }

    /// <summary>Kills Azurite: connections are refused until <see cref="Restart"/>.</summary>
    public void Stop() => _process.Stop();

    /// <summary>Starts it again on the same port and data folder.</summary>
    public void Restart() => _process.Restart();

    public void Dispose()
    {
        _process.Dispose();
        _folder.Dispose();
    }
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
