using System.Diagnostics;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cluster;

/// <summary>
/// A cluster over mutual TLS with real processes and certificates made by `make certs`' script: a worker with a
/// certificate from the cluster's authority joins and trains; one from another authority, or without TLS, never joins.
/// </summary>
public class TlsClusterTests
{
    private TempDirectory _dir = null!;
    private string _certs = null!;
    private string _strangers = null!;

    [OneTimeSetUp]
    public void MakeCertificates()
    {
        _dir = new TempDirectory();
        _certs = _dir.Combine("certs");
        _strangers = _dir.Combine("other-ca");
        MakeCerts(_certs, "orchestrator", "worker");
        MakeCerts(_strangers, "stranger");
        TestCorpus.Write(_dir.Path);
    }

    [OneTimeTearDown]
    public void TearDown() => _dir.Dispose();

    private string[] Tls(string folder, string node, string? authority = null) =>
        ["--tls-cert", Path.Combine(folder, node + ".crt"), "--tls-key", Path.Combine(folder, node + ".key"), "--tls-ca", authority ?? Path.Combine(folder, "ca.crt")];

    [Test]
    public async Task WorkerWithACertificateFromTheClusterAuthority_JoinsOverTlsAndTrains()
    {
        await using var cluster = await ServedCluster.StartAsync(_dir.Combine("served-ok"), extraArgs: Tls(_certs, "orchestrator"));
        Assert.That(cluster.Serve.Output, Does.Contain("cluster transport: mutual TLS"));
        var worker = await cluster.AddWorkerAsync(extraArgs: Tls(_certs, "worker"));
        var experiment = _dir.Combine("tls.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(_dir.Path, "tls", steps: 6));

        var result = await CliProcess.RunAsync(_dir.Path, "submit", experiment, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + cluster.Serve.Output + worker.Output);
        Assert.That(result.Output, Does.Contain("completed"));
    }

    [Test]
    public async Task WorkerWithACertificateFromAnotherAuthority_OrWithoutTls_CannotJoin()
    {
        await using var cluster = await ServedCluster.StartAsync(_dir.Combine("served-refuse"), extraArgs: Tls(_certs, "orchestrator"));
        // A well-formed certificate from its own authority: the orchestrator's check of the client certificate refuses it.
        var stranger = await cluster.AddWorkerAsync(waitForJoin: false, joinTimeoutSeconds: 8, extraArgs: Tls(_strangers, "stranger"));
        var plain = await cluster.AddWorkerAsync(waitForJoin: false, joinTimeoutSeconds: 8);

        Assert.Multiple(async () =>
        {
            Assert.That(await stranger.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(3), stranger.Output);
            Assert.That(stranger.Output, Does.Not.Contain("joined"));
            Assert.That(await plain.WaitForExitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(3), plain.Output);
            Assert.That(plain.Output, Does.Not.Contain("joined"));
            Assert.That(cluster.Serve.Output, Does.Contain("TLS: refused").And.Contain("CN=stranger"), cluster.Serve.Output);
        });
    }

    [Test]
    public async Task TlsSettings_PartOrUnreadable_AreBadInputNamingTheSetting()
    {
        var part = await CliProcess.RunAsync(_dir.Path, "serve", "--port", "0", "--http-port", "0", "--runs", _dir.Combine("served-bad"),
            "--tls-cert", Path.Combine(_certs, "orchestrator.crt"));
        Assert.That(part.ExitCode, Is.EqualTo(2), part.Output);
        Assert.That(part.Stderr, Does.Contain("missing: --tls-key, --tls-ca"));

        await using var worker = new WatchedProcess("worker.dll",
            ["--seed", "127.0.0.1:1", .. Tls(_certs, "worker", authority: Path.Combine(_strangers, "ca.crt"))],
            new Dictionary<string, string> { ["TRAINING_CLUSTER_SECRET"] = "s" });
        Assert.That(await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(2), worker.Output);
        Assert.That(worker.Output, Does.Contain("is not signed by the authority"));
    }

    private static void MakeCerts(string folder, params string[] nodes)
    {
        var script = Path.Combine(RunEvents.RepositoryRoot(), "infra", "install", "certs.sh");
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { script, folder }.Concat(nodes)) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.EqualTo(0), output);
    }
}
