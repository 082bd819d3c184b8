using System.Diagnostics;
using System.Runtime.InteropServices;
using Npgsql;

namespace Training.Tests.Support;

/// <summary>
/// A real, throwaway PostgreSQL server on a loopback port: its own cluster in a temporary folder (trust auth, user
/// <c>postgres</c>, fsync off), started with pg_ctl and stopped with it. <see cref="Stop"/> and <see cref="StartAgain"/>
/// make an outage that loses nothing, on the same port. PostgreSQL refuses to run as root, so as root the cluster
/// belongs to <c>nobody</c> and every server command runs through <c>runuser</c>.
/// </summary>
public sealed class PostgresServer : IDisposable
{
    private const string SuperUser = "postgres";

    private readonly string _bin;
    private readonly string _root;
    private readonly bool _asNobody;
    private bool _running;

    private PostgresServer(string bin, string root, bool asNobody, int port)
    {
        _bin = bin;
        _root = root;
        _asNobody = asNobody;
        Port = port;
    }

    public int Port { get; }

    private string DataDir => Path.Combine(_root, "data");
    private string SocketDir => Path.Combine(_root, "socket");
    private string LogPath => Path.Combine(_root, "server.log");

    /// <summary>postgres://postgres@127.0.0.1:PORT/DATABASE (what <c>--state</c> takes).</summary>
    public string Uri(string database) => $"postgres://{SuperUser}@127.0.0.1:{Port}/{database}";

    /// <summary>An Npgsql connection string to one of the server's databases (raw access for tests).</summary>
    public string ConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1", Port = Port, Username = SuperUser, Database = database, Pooling = false, Timeout = 5,
    }.ConnectionString;

    /// <summary>Initializes a cluster in a new temporary folder and starts it on a free loopback port.</summary>
    /// <exception cref="InvalidOperationException">No PostgreSQL binaries here (with how to install them), or the server did not start (with its log).</exception>
    public static PostgresServer Start()
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("the PostgreSQL test server runs on Linux");
        var bin = FindBinaries();
        var asNobody = IsRoot();
        // As root the folders must be reachable by nobody: /tmp itself (not $TMPDIR, whose parents may be private).
        var parent = asNobody ? "/tmp" : Path.GetTempPath();
        var root = Path.Combine(parent, "training-pg-" + Guid.NewGuid().ToString("N")[..12]);
        const UnixFileMode open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        Directory.CreateDirectory(root, open);
        var server = new PostgresServer(bin, root, asNobody, Azurite.FreePort());
        try
        {
            Directory.CreateDirectory(server.DataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            Directory.CreateDirectory(server.SocketDir, open);
            File.WriteAllText(server.LogPath, "");
            if (asNobody) Run("chown", ["-R", "nobody", server.DataDir, server.SocketDir, server.LogPath]);
            server.RunServerTool("initdb", ["-D", server.DataDir, "-U", SuperUser, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
            server.StartAgain();
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Starts the stopped server again: same data, same port. Returns once it accepts connections.</summary>
    public void StartAgain()
    {
        var options = $"-p {Port} -k {SocketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off";
        RunServerTool("pg_ctl", ["start", "-w", "-t", "30", "-D", DataDir, "-l", LogPath, "-o", options]);
        _running = true;
        WaitUntilAccepting(TimeSpan.FromSeconds(30));
    }

    /// <summary>Shuts the server down (fast: clients are disconnected, the data kept); connections are refused until <see cref="StartAgain"/>.</summary>
    public void Stop()
    {
        RunServerTool("pg_ctl", ["stop", "-w", "-t", "30", "-m", "fast", "-D", DataDir]);
        _running = false;
    }

    /// <summary>Creates an empty database (a unique name unless given) and returns its name.</summary>
    public string CreateDatabase(string? name = null)
    {
        name ??= "t_" + Guid.NewGuid().ToString("N")[..16];
        using var connection = new NpgsqlConnection(ConnectionString("postgres"));
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"CREATE DATABASE \"{name}\"";
        command.ExecuteNonQuery();
        return name;
    }

    public void Dispose()
    {
        if (_running)
        {
            // Immediate: nothing here needs a clean shutdown, and the folder goes next.
            try { RunServerTool("pg_ctl", ["stop", "-w", "-t", "10", "-m", "immediate", "-D", DataDir]); } catch (InvalidOperationException) { }
            _running = false;
        }
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private void WaitUntilAccepting(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var connection = new NpgsqlConnection(ConnectionString("postgres"));
                connection.Open();
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                last = e;
                Thread.Sleep(100);
            }
        }
        throw new InvalidOperationException($"PostgreSQL on port {Port} did not accept connections within {timeout.TotalSeconds:0} s ({last?.Message}); its log:\n{ReadLog()}");
    }

    private string ReadLog()
    {
        try { return File.ReadAllText(LogPath); } catch (IOException e) { return e.Message; }
    }

    /// <summary>Runs initdb or pg_ctl from the found folder, as nobody when this process is root.</summary>
    private void RunServerTool(string tool, IReadOnlyList<string> arguments)
    {
        var path = Path.Combine(_bin, tool);
        try
        {
            if (_asNobody) Run("runuser", ["-u", "nobody", "--", path, .. arguments]);
            else Run(path, arguments);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"{e.Message}\nserver log:\n{ReadLog()}", e);
        }
    }

    private static void Run(string program, IReadOnlyList<string> arguments)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            // The server inherits this folder as its working directory; nobody must be able to enter it.
            WorkingDirectory = "/",
        };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {program}");
        // pg_ctl start leaves the server holding inherited pipes: read to the end only once the tool itself exits.
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000))
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} did not finish within 60 s");
        }
        if (process.ExitCode != 0)
        {
            var output = (stdout.Wait(2000) ? stdout.Result : "") + (stderr.Wait(2000) ? stderr.Result : "");
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}: {output.Trim()}");
        }
    }

    /// <summary>The folder holding initdb, pg_ctl and postgres: $PATH first, then Debian's /usr/lib/postgresql/VERSION/bin (newest).</summary>
    private static string FindBinaries() => FindBinaries(Environment.GetEnvironmentVariable("PATH") ?? "", "/usr/lib/postgresql");

    /// <summary><see cref="FindBinaries()"/> over a given search path and Debian root (tested on made-up layouts).</summary>
    internal static string FindBinaries(string searchPath, string debianRoot)
    {
        static bool Complete(string dir) => new[] { "initdb", "pg_ctl", "postgres" }.All(tool => File.Exists(Path.Combine(dir, tool)));
        static Version? ParseVersion(string name) => Version.TryParse(name.Contains('.') ? name : name + ".0", out var v) ? v : null;
        var onPath = searchPath.Split(':', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(Complete);
        if (onPath is not null) return onPath;
        // By version number: 15 is newer than 9.6.
        var versioned = Directory.Exists(debianRoot)
            ? Directory.GetDirectories(debianRoot)
                .Select(dir => (Dir: Path.Combine(dir, "bin"), Version: ParseVersion(Path.GetFileName(dir))))
                .Where(d => d.Version is not null && Complete(d.Dir)).OrderByDescending(d => d.Version).Select(d => d.Dir).FirstOrDefault()
            : null;
        return versioned ?? throw new InvalidOperationException(
            "the PostgreSQL tests need a PostgreSQL server (initdb, pg_ctl, postgres on PATH or under /usr/lib/postgresql/*/bin): " +
            "run `make prerequisites` (or apt-get install postgresql)");
    }

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEffectiveUserId();

    private static bool IsRoot() => Environment.UserName == "root" || (OperatingSystem.IsLinux() && GetEffectiveUserId() == 0);
}
