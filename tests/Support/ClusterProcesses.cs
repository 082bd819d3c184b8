using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace Training.Tests.Support;

/// <summary>A child process whose output is collected as it arrives, so tests can wait for a line.</summary>
public sealed class WatchedProcess : IAsyncDisposable
{
    private readonly StringBuilder _output = new();
    private readonly Process _process;

    /// <param name="userId">Run as this user and group id (setpriv; needs root), e.g. to show a worker cannot read the
    /// run folder; null for this process's user.</param>
    public WatchedProcess(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null,
        string? workingDirectory = null, int? userId = null)
    {
        var info = new ProcessStartInfo(userId is null ? "dotnet" : "setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        if (userId is { } uid)
            foreach (var a in new[] { $"--reuid={uid}", $"--regid={uid}", "--clear-groups", "--", "dotnet" }) info.ArgumentList.Add(a);
        info.ArgumentList.Add(Path.Combine(TestContext.CurrentContext.TestDirectory, program));
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("TRAINING_CLUSTER_SECRET");
        info.Environment.Remove("ORCHESTRATOR_API_TOKEN");
        if (environment is not null)
            foreach (var (k, v) in environment) info.Environment[k] = v;
        _process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {program}");
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Output { get { lock (_output) return _output.ToString(); } }

    public bool HasExited => _process.HasExited;

    /// <summary>The operating system's id of the process (the <c>dotnet</c> host running the program).</summary>
    public int Pid => _process.Id;

    public int ExitCode => _process.ExitCode;

    /// <summary>The process id (of the dotnet host running the program).</summary>
    public int Id => _process.Id;

    /// <summary>kill -9: the process gets no chance to clean up.</summary>
    public void KillHard() => _process.Kill(entireProcessTree: false);

    /// <summary>Sends a POSIX signal (SIGTERM, SIGSTOP, SIGCONT) with kill(1).</summary>
    public void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString()]) ?? throw new InvalidOperationException("cannot run kill");
        kill.WaitForExit();
    }

    /// <summary>Resident memory now, from /proc (bytes).</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        throw new InvalidOperationException("no VmRSS in /proc status");
    }

    /// <summary>Waits until the output matches <paramref name="pattern"/>; returns the match.</summary>
    public async Task<Match> WaitForAsync(string pattern, TimeSpan timeout)
    {
        var regex = new Regex(pattern);
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var match = regex.Match(Output);
            if (match.Success) return match;
            if (_process.HasExited) break;
            await Task.Delay(100);
        }
        var last = regex.Match(Output);
        if (last.Success) return last;
        throw new TimeoutException($"no output matching /{pattern}/ within {timeout}; output so far:\n{Output}");
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"process did not exit within {timeout}; output:\n{Output}");
        }
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
        _process.Dispose();
    }
}

/// <summary>An <c>orchestrator serve</c> on free loopback ports, and workers joined to it.</summary>
public sealed class ServedCluster : IAsyncDisposable
{
    private readonly List<WatchedProcess> _workers = new();

    private readonly string? _dataRoot;
    private readonly IReadOnlyList<string>? _extraArgs;
    private readonly IReadOnlyDictionary<string, string>? _environment;

    private ServedCluster(WatchedProcess serve, string seed, string api, string secret, string runsDirectory,
        string? dataRoot = null, IReadOnlyList<string>? extraArgs = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        _dataRoot = dataRoot;
        _extraArgs = extraArgs;
        _environment = environment;
        Serve = serve;
        Seed = seed;
        Api = api;
        Secret = secret;
        RunsDirectory = runsDirectory;
    }

    public string RunsDirectory { get; }

    /// <summary>The API token file serve generated under its runs folder; the CLI passes it as --token-file.</summary>
    public string TokenFile => Path.Combine(RunsDirectory, ".api-token");

    public string Token => File.ReadAllText(TokenFile).Trim();

    public WatchedProcess Serve { get; private set; }
    public string Seed { get; }
    public string Api { get; }
    public string Secret { get; }
    public IReadOnlyList<WatchedProcess> Workers => _workers;

    /// <summary>
    /// Starts serve with a generated API token; API-submitted data may lie under <paramref name="dataRoot"/> (by default
    /// the folder holding the runs folder, where the tests write their corpus). Extra serve arguments go last.
    /// </summary>
    public static async Task<ServedCluster> StartAsync(string runsDirectory, string secret = "test-secret", string? dataRoot = null,
        IReadOnlyList<string>? extraArgs = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var runs = Path.GetFullPath(runsDirectory);
        var (serve, seed, api) = await StartServeAsync(runs, "0", "0", secret, dataRoot, extraArgs, environment);
        return new ServedCluster(serve, seed, api, secret, runs, dataRoot, extraArgs, environment);
    }

    private static async Task<(WatchedProcess Serve, string Seed, string Api)> StartServeAsync(string runs, string port, string httpPort,
        string secret, string? dataRoot, IReadOnlyList<string>? extraArgs, IReadOnlyDictionary<string, string>? environment)
    {
        var env = new Dictionary<string, string> { ["TRAINING_CLUSTER_SECRET"] = secret };
        if (environment is not null) foreach (var (k, v) in environment) env[k] = v;
        var serve = new WatchedProcess("orchestrator.dll",
            ["serve", "--port", port, "--http-port", httpPort, "--runs", runs, "--data-root", dataRoot ?? Path.GetDirectoryName(runs)!, .. extraArgs ?? []],
            env);
        var match = await serve.WaitForAsync(@"cluster seed (\S+), API http://(\S+),", TimeSpan.FromSeconds(60));
        await serve.WaitForAsync("submit with:", TimeSpan.FromSeconds(10));
        return (serve, match.Groups[1].Value, match.Groups[2].Value);
    }

    /// <summary>Starts serve again on the same cluster and API ports and runs folder (after it was killed or stopped),
    /// as a service manager would; the workers keep the seed address they were given.</summary>
    public async Task RestartServeAsync()
    {
        if (!Serve.HasExited) throw new InvalidOperationException("serve is still running");
        var previous = Serve;
        var (serve, _, _) = await StartServeAsync(RunsDirectory, Seed.Split(':')[1], Api.Split(':')[1], Secret, _dataRoot, _extraArgs, _environment);
        Serve = serve;
        _previousServes.Add(previous);
    }

    private readonly List<WatchedProcess> _previousServes = new();

    /// <summary>Output of every serve process so far, oldest first (for assertion messages).</summary>
    public string AllServeOutput => string.Join("\n--- serve restarted ---\n", _previousServes.Append(Serve).Select(s => s.Output));

    /// <summary>Starts a worker and waits until it has joined. <paramref name="environment"/> adds variables (storage
    /// credentials); <paramref name="workingDirectory"/> and <paramref name="userId"/> place it apart from the submitter.</summary>
    public async Task<WatchedProcess> AddWorkerAsync(string? secret = null, bool waitForJoin = true, int joinTimeoutSeconds = 30,
        IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null, int? userId = null,
        IReadOnlyList<string>? extraArgs = null)
    {
        var env = new Dictionary<string, string> { ["TRAINING_CLUSTER_SECRET"] = secret ?? Secret };
        if (environment is not null) foreach (var (k, v) in environment) env[k] = v;
        var worker = new WatchedProcess("worker.dll", ["--seed", Seed, "--threads", "1", "--join-timeout", joinTimeoutSeconds.ToString(), .. extraArgs ?? []],
            env, workingDirectory, userId);
        _workers.Add(worker);
        if (waitForJoin) await worker.WaitForAsync("joined", TimeSpan.FromSeconds(60));
        return worker;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in _workers) await worker.DisposeAsync();
        await Serve.DisposeAsync();
        foreach (var serve in _previousServes) await serve.DisposeAsync();
    }
}
