using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Training.Orchestrator.State;
using Training.Tests.Support;

namespace Training.Tests.State;

/// <summary>
/// One backend for a parameterized fixture: "sqlite" (a fresh file per database) or "postgres" (one real server per
/// fixture, a fresh database per call). Tests ask it for new, empty locations and raw connections to them.
/// </summary>
public sealed class StateBackends : IDisposable
{
    public static readonly object[] Names = ["sqlite", "postgres"];

    private readonly PostgresServer? _server;
    private readonly TempDirectory _folder = new();

    public StateBackends(string backend)
    {
        Backend = backend;
        if (backend == "postgres") _server = PostgresServer.Start();
        else if (backend != "sqlite") throw new ArgumentException($"unknown backend {backend}");
    }

    public string Backend { get; }

    public PostgresServer Server => _server ?? throw new InvalidOperationException("not the postgres backend");

    /// <summary>An empty store location: a new file, or a new database on the server.</summary>
    public StateLocation NewLocation() => _server is null
        ? StateLocation.Parse("sqlite:" + _folder.Combine(Guid.NewGuid().ToString("N")[..12], "state.db"))
        : StateLocation.Parse(_server.Uri(_server.CreateDatabase()));

    /// <summary>A connection that bypasses the store (to damage or inspect a database).</summary>
    public DbConnection RawConnection(StateLocation location)
    {
        DbConnection connection = location.Backend == StateBackend.Sqlite
            ? new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = location.Target, Pooling = false }.ToString())
            : new NpgsqlConnection(Server.ConnectionString(location.Target[(location.Target.LastIndexOf('/') + 1)..]));
        connection.Open();
        return connection;
    }

    public static object? Scalar(DbConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    public void Dispose()
    {
        _server?.Dispose();
        _folder.Dispose();
    }
}
