using NUnit.Framework;
using Training.Shared.Collectives;

namespace Training.Tests.Collectives;

public class TcpRingFailureTests
{
    private const int Elements = 1_000_000;

    [Test]
    public void AllReduceSum_PeerClosesItsSockets_OtherRanksFailPromptly()
    {
        var groups = Ring.Form(3, operationTimeout: TimeSpan.FromSeconds(30));
        try
        {
            var survivors = Enumerable.Range(0, 2).Select(rank => Ring.Start(() => groups[rank].AllReduceSum(new byte[Elements * 4], ElementType.Float32))).ToArray();
            Thread.Sleep(200);
            groups[2].Dispose(); // the process of rank 2 dies: its sockets close

            Assert.That(Task.WaitAll(survivors, TimeSpan.FromSeconds(10)), Is.True, "survivors return long before the 30 s operation timeout");
            foreach (var (error, elapsed) in survivors.Select(s => s.Result))
            {
                Assert.That(error, Is.InstanceOf<CollectiveException>());
                Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
            }
            Assert.That(survivors[0].Result.Error!.Message, Does.Contain("rank 0/3").And.Contain("rank 2"), "rank 0 receives from rank 2");
        }
        finally
        {
            Ring.DisposeAll(groups);
        }
    }

    [Test]
    public void AllReduceSum_PeerNeverJoinsTheOperation_TimesOutWithinTheOperationTimeout()
    {
        var timeout = TimeSpan.FromSeconds(1);
        var groups = Ring.Form(3, operationTimeout: timeout);
        try
        {
            // Rank 2 stays connected but never calls: a hung process rather than a dead one.
            var waiting = Enumerable.Range(0, 2).Select(rank => Ring.Start(() => groups[rank].AllReduceSum(new byte[Elements * 4], ElementType.Float32))).ToArray();
            Assert.That(Task.WaitAll(waiting, TimeSpan.FromSeconds(15)), Is.True);

            var (error, elapsed) = waiting[0].Result;
            Assert.That(error, Is.InstanceOf<CollectiveTimeoutException>());
            Assert.That(error!.Message, Does.Contain("rank 0/3").And.Contain("1 s").And.Contain("from rank 2"));
            Assert.That(elapsed, Is.GreaterThanOrEqualTo(timeout * 0.9).And.LessThan(timeout + TimeSpan.FromSeconds(5)));
            Assert.That(waiting[1].Result.Error, Is.InstanceOf<CollectiveException>(), "rank 1 fails too, by its own timeout or by rank 0 closing");

            var later = Assert.Throws<CollectiveTimeoutException>(() => groups[0].AllReduceSum(new byte[4], ElementType.Float32));
            Assert.That(later!.Message, Does.Contain("unusable"));
        }
        finally
        {
            Ring.DisposeAll(groups);
        }
    }

    [Test]
    public void Abort_FromAnotherThread_WakesABlockedRankWithTheReason()
    {
        var groups = Ring.Form(2, operationTimeout: TimeSpan.FromSeconds(30));
        try
        {
            var blocked = Ring.Start(() => groups[0].AllReduceSum(new byte[Elements * 4], ElementType.Float32));
            Thread.Sleep(300);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            groups[0].Abort("coordinator: trial t000 generation 1 lost a worker");
            groups[0].Abort("a second abort is harmless");

            Assert.That(blocked.Wait(TimeSpan.FromSeconds(5)), Is.True, "the blocked rank wakes within seconds");
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
            var error = blocked.Result.Error;
            Assert.That(error, Is.InstanceOf<CollectiveAbortedException>());
            Assert.That(error!.Message, Does.Contain("rank 0/2").And.Contain("lost a worker"));
            Assert.Throws<CollectiveAbortedException>(() => groups[0].AllReduceSum(new byte[4], ElementType.Float32));
            // The peer's connection ended with the abort: it fails at once instead of waiting for its timeout.
            var peer = Ring.Start(() => groups[1].AllReduceSum(new byte[Elements * 4], ElementType.Float32));
            Assert.That(peer.Wait(TimeSpan.FromSeconds(5)), Is.True);
            Assert.That(peer.Result.Error, Is.InstanceOf<CollectiveException>());
        }
        finally
        {
            Ring.DisposeAll(groups);
        }
    }

    [Test]
    public void Connect_StaleRankWithAnotherGroupToken_IsRefusedWhileTheRealRingForms()
    {
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var listeners = new[] { RingListener.Start(), RingListener.Start() };
        using var staleListener = RingListener.Start();
        try
        {
            // A rank 1 left over from generation 2 dials rank 0 first; rank 0, now in generation 3, accepts it first.
            var stale = Ring.Start(() => TcpRing.Connect(staleListener, 1, [listeners[0].Endpoint, staleListener.Endpoint], "t000/g2", TimeSpan.FromSeconds(10)).Dispose());
            Thread.Sleep(300);
            var groups = Ring.Form(listeners, "t000/g3", log: log.Enqueue);
            try
            {
                var buffers = new[] { BitConverter.GetBytes(2f), BitConverter.GetBytes(5f) };
                Ring.OnEveryRank(2, rank => groups[rank].AllReduceSum(buffers[rank], ElementType.Float32));
                Assert.That(buffers.Select(b => BitConverter.ToSingle(b)), Has.All.EqualTo(7f));
            }
            finally
            {
                Ring.DisposeAll(groups);
            }

            Assert.That(stale.Wait(TimeSpan.FromSeconds(5)), Is.True, "the stale rank learns at once that it was refused");
            Assert.That(stale.Result.Error, Is.InstanceOf<CollectiveException>().And.Not.InstanceOf<CollectiveTimeoutException>());
            Assert.That(stale.Result.Error!.Message, Does.Contain("refused").And.Contain("'t000/g2'").And.Contain("'t000/g3'"));
            Assert.That(stale.Result.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
            Assert.That(log, Has.Some.Contains("rank 0/2: refused a ring connection").And.Contains("'t000/g2'"));
        }
        finally
        {
            foreach (var listener in listeners) listener.Dispose();
        }
    }

    [Test]
    public void Connect_SuccessorNeverStarts_TimesOutNamingTheMissingRank()
    {
        using var listener = RingListener.Start();
        RingEndpoint nobody;
        using (var closed = RingListener.Start()) nobody = closed.Endpoint;

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = Assert.Throws<CollectiveTimeoutException>(() =>
            TcpRing.Connect(listener, 0, [listener.Endpoint, nobody], "t000/g1", TimeSpan.FromSeconds(1)));

        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        Assert.That(error!.Message, Does.Contain("rank 0/2").And.Contain("within 1 s").And.Contain($"rank 1 at {nobody}").And.Contain("from rank 1"));
    }

    [Test]
    public void Connect_ListenersReusedForTheNextGeneration_FormANewRingAfterAnAbort()
    {
        var listeners = Enumerable.Range(0, 3).Select(_ => RingListener.Start()).ToArray();
        try
        {
            var first = Ring.Form(listeners, "t000/g1");
            foreach (var group in first) group.Abort("generation 1 ends");
            Ring.DisposeAll(first);

            var second = Ring.Form(listeners, "t000/g2");
            try
            {
                var buffers = Enumerable.Range(0, 3).Select(rank => BitConverter.GetBytes((float)rank + 1)).ToArray();
                Ring.OnEveryRank(3, rank => second[rank].AllReduceSum(buffers[rank], ElementType.Float32));
                Assert.That(buffers.Select(b => BitConverter.ToSingle(b)), Has.All.EqualTo(6f));
            }
            finally
            {
                Ring.DisposeAll(second);
            }
        }
        finally
        {
            foreach (var listener in listeners) listener.Dispose();
        }
    }
}
