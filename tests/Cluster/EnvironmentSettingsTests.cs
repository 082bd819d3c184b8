using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cluster;

/// <summary>`orchestrator serve` and `worker` configured by environment variables alone (as containers are), with the
/// same validation as their flags and errors that name the variable.</summary>
public class EnvironmentSettingsTests
{
    [Test]
    public async Task ServeAndWorker_FromEnvironmentOnly_FormAClusterThatTrains()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var runs = dir.Combine("served");
        await using var serve = new WatchedProcess("orchestrator.dll", ["serve"], new Dictionary<string, string>
        {
            ["TRAINING_CLUSTER_SECRET"] = "env-secret",
            ["ORCHESTRATOR_PORT"] = "0",
            ["ORCHESTRATOR_HTTP_PORT"] = "0",
            ["ORCHESTRATOR_RUNS"] = runs,
            ["ORCHESTRATOR_DATA_ROOT"] = dir.Path,
            ["ORCHESTRATOR_PUBLIC_READ"] = "true",
        });
        var started = await serve.WaitForAsync(@"cluster seed (\S+), API http://(\S+),", TimeSpan.FromSeconds(60));
        await serve.WaitForAsync("submit with:", TimeSpan.FromSeconds(10));
        Assert.That(serve.Output, Does.Contain("API reads: open to anyone"), "ORCHESTRATOR_PUBLIC_READ=true was read");
        await using var worker = new WatchedProcess("worker.dll", [], new Dictionary<string, string>
        {
            ["TRAINING_CLUSTER_SECRET"] = "env-secret",
            ["WORKER_SEED"] = started.Groups[1].Value,
            ["WORKER_THREADS"] = "1",
            ["WORKER_JOIN_TIMEOUT"] = "30",
        });
        await worker.WaitForAsync("joined", TimeSpan.FromSeconds(60));
        Assert.That(worker.Output, Does.Contain("(cpu, 1 threads)"), "WORKER_THREADS was read");
        var experiment = dir.Combine("env.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(dir.Path, "env", steps: 4));

        var result = await CliProcess.RunAsync(dir.Path, "submit", experiment, "--cluster", started.Groups[2].Value,
            "--token-file", Path.Combine(runs, ".api-token"));

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + serve.Output + worker.Output);
    }

    [TestCase("WORKER_THREADS", "many", "WORKER_THREADS must be an integer >= 1, got 'many'")]
    [TestCase("WORKER_ROLE", "boss", "WORKER_ROLE must be trainer or teacher, got 'boss'")]
    [TestCase("WORKER_SEED", "nowhere", "WORKER_SEED must be HOST:PORT, got 'nowhere'")]
    public async Task Worker_BadSettingInTheEnvironment_ExitsTwoNamingTheVariable(string variable, string value, string expected)
    {
        var environment = new Dictionary<string, string> { ["TRAINING_CLUSTER_SECRET"] = "s", ["WORKER_SEED"] = "127.0.0.1:1", [variable] = value };
        await using var worker = new WatchedProcess("worker.dll", [], environment);

        Assert.That(await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(2), worker.Output);
        Assert.That(worker.Output, Does.Contain(expected));
    }

    [TestCase("ORCHESTRATOR_PORT", "x", "ORCHESTRATOR_PORT must be an integer >= 0, got 'x'")]
    [TestCase("ORCHESTRATOR_PUBLIC_READ", "maybe", "ORCHESTRATOR_PUBLIC_READ must be 1, true, yes, 0, false or no, got 'maybe'")]
    [TestCase("ORCHESTRATOR_STORAGE", "s3://bucket/x", "unknown scheme 's3'")]
    public async Task Serve_BadSettingInTheEnvironment_ExitsTwoNamingIt(string variable, string value, string expected)
    {
        using var dir = new TempDirectory();
        await using var serve = new WatchedProcess("orchestrator.dll", ["serve"], new Dictionary<string, string>
        {
            ["TRAINING_CLUSTER_SECRET"] = "s", ["ORCHESTRATOR_HTTP_PORT"] = "0", ["ORCHESTRATOR_RUNS"] = dir.Combine("runs"), [variable] = value,
        });

        Assert.That(await serve.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(2), serve.Output);
        Assert.That(serve.Output, Does.Contain(expected));
    }
}
