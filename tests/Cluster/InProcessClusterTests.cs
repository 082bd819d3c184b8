using NUnit.Framework;
using Training.Shared.Training;
using Training.Orchestrator.Cluster;
using Training.Orchestrator.State;
using Training.Shared.Cluster;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Tests.Support;
using Training.Worker.Cluster;

namespace Training.Tests.Cluster;

/// <summary>
/// Coordinator and worker as two actor systems in this process, with serialize-messages on: every message, local
/// or remote, goes through the MessagePack serializer.
/// </summary>
[Category("Cluster")]
public class InProcessClusterTests
{
    [Test]
    public async Task Run_CoordinatorAndWorkerInProcess_CompletesWithEveryMessageSerialized()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("tiny.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "inproc", steps: 4));
        var spec = ExperimentLoader.Load(path);
        using var store = new RunStore(dir.Combine("runs"));
        var run = store.Create(spec, TrialComponents.Expand(spec), File.ReadAllText(path));

        await using var coordinator = await CoordinatorHost.StartAsync("127.0.0.1", 0, "in-process-secret", store, serializeAllMessages: true);
        await using var worker = await WorkerHost.StartAsync(
            new ClusterNodeSettings("127.0.0.1", 0, "in-process-secret", ClusterHosting.TrainerRole, coordinator.Address, SerializeAllMessages: true),
            "in-process-worker", "cpu", threads: 1);
        Assert.That(await worker.WaitUntilJoinedAsync(TimeSpan.FromSeconds(30)), Is.True, "the worker joined");

        var events = new List<TrainingEvent>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await coordinator.RunAsync(run, e => { lock (events) events.Add(e); }, CancellationToken.None,
            () => timeout.IsCancellationRequested ? "timed out" : null);

        var status = run.Trial("inproc-t000").ReadStatus();
        Assert.Multiple(() =>
        {
            Assert.That(status.State, Is.EqualTo(TrialState.Completed), status.Error);
            Assert.That(status.Step, Is.EqualTo(4));
            Assert.That(events.OfType<StepMetrics>().Select(m => m.Step), Is.EqualTo(new long[] { 1, 2, 3, 4 }));
            Assert.That(events.OfType<TrialFinished>().Single().Outcome, Is.EqualTo(TrialOutcome.Completed));
        });
    }
}
