using System.Runtime.Serialization;
using NUnit.Framework;
using Training.Shared.Messages;

namespace Training.Tests.Cluster;

public class MessageSerializerTests
{
    private static IEnumerable<object> Messages()
    {
        yield return new RegisterWorker("w1", "127.0.0.1", "trainer", "cpu", 2);
        yield return new WorkerRegistered("w1");
        yield return new AssignRank("run", "/runs/run", "t0", 0, 3, 1, 2, "name: x\n", "/runs/run/spec.yaml", "trials/t0/checkpoints");
        yield return new AssignRank("run", "/runs/run", "t0", 0, 3, 1, 2, "name: x\n", "/runs/run/spec.yaml", "trials/t0/checkpoints",
            "azure://account/checkpoints/runs/run");
        yield return new RankListening("t0", 3, 1, "127.0.0.1", 40001);
        yield return new StartTraining("t0", 3, ["127.0.0.1:1", "127.0.0.1:2"]);
        yield return new StopRank("t0", 3, true, "peer lost");
        yield return new RankFinished("t0", 3, 0, TrialOutcome.Failed, 17, "boom");
        yield return new SubmitRun("/runs/run");
        yield return new RunAccepted("run", 3);
        yield return new CancelRun("run");
        yield return new ShutdownWorker("done");
        yield return new ShutdownWorkers("run over");
        yield return new WorkersShutDown(2);
        yield return new StepMetrics("t0", 5, 2.5, 0.25, 1e-3, 0.9, 1234.5, 0.4);
        yield return new EvalMetrics("t0", 5, 2.4, 0.3, 900);
        yield return new TrialStarted("t0", 0, 100, 12345, null);
        yield return new CheckpointCommitted("t0", 5, "step-00000005", "/x");
        yield return new TrialFinished("t0", TrialOutcome.Completed, 100, null);
    }

    [TestCaseSource(nameof(Messages))]
    public void PackThenUnpack_EveryMessage_RoundTripsEqual(object message)
    {
        var (manifest, payload) = MessagePackAkkaSerializer.Pack(message);
        var back = MessagePackAkkaSerializer.Unpack(manifest, payload);
        Assert.That(back.GetType(), Is.EqualTo(message.GetType()));
        // Records compare by value; lists inside compare by reference, so compare their text form for those.
        if (message is StartTraining start)
            Assert.That(((StartTraining)back).Endpoints, Is.EqualTo(start.Endpoints));
        else
            Assert.That(back, Is.EqualTo(message));
    }

    [Test]
    public void KnownTypes_CoverEveryClusterMessage()
    {
        var all = typeof(IClusterMessage).Assembly.GetTypes().Where(t => !t.IsAbstract && typeof(IClusterMessage).IsAssignableFrom(t)).ToList();
        Assert.That(all, Is.Not.Empty);
        Assert.That(all.Select(t => t.Name), Is.SubsetOf(MessagePackAkkaSerializer.KnownTypes.Keys));
    }

    [Test]
    public void Unpack_UnknownManifest_IsRejected()
    {
        var e = Assert.Throws<SerializationException>(() => MessagePackAkkaSerializer.Unpack("System.Diagnostics.Process", [0x80]));
        Assert.That(e!.Message, Does.Contain("unknown cluster message type"));
    }

    [Test]
    public void Pack_TypeOutsideTheList_IsRejected()
    {
        Assert.Throws<SerializationException>(() => MessagePackAkkaSerializer.Pack(new Uri("http://x")));
    }
}
