using System.Net.Sockets;
using Azure;
using NUnit.Framework;
using Polly.Timeout;
using Training.Shared.Storage;

namespace Training.Tests.Storage;

public class StorageRetryTests
{
    [TestCase(0, true)]
    [TestCase(408, true)]
    [TestCase(429, true)]
    [TestCase(500, true)]
    [TestCase(502, true)]
    [TestCase(503, true)]
    [TestCase(504, true)]
    [TestCase(400, false)]
    [TestCase(403, false)]
    [TestCase(404, false)]
    [TestCase(409, false)]
    [TestCase(412, false)]
    [TestCase(416, false)]
    public void IsTransient_RequestFailedWithStatus_OnlyThrottlingServerErrorsAndNoResponse(int status, bool transient) =>
        Assert.That(StorageRetry.IsTransient(new RequestFailedException(status, "x")), Is.EqualTo(transient));

    [Test]
    public void IsTransient_FinalOutcomesAndTransportFailures_ClassifiedApart()
    {
        Assert.Multiple(() =>
        {
            Assert.That(StorageRetry.IsTransient(new BlobAlreadyExistsException("m")), Is.False);
            Assert.That(StorageRetry.IsTransient(new FileNotFoundException("x")), Is.False);
            Assert.That(StorageRetry.IsTransient(new BlobStoreException("retried already", 503, transient: true)), Is.False);
            Assert.That(StorageRetry.IsTransient(new ArgumentException("bad path")), Is.False);
            Assert.That(StorageRetry.IsTransient(new HttpRequestException("refused")), Is.True);
            Assert.That(StorageRetry.IsTransient(new IOException("reset by peer", new SocketException())), Is.True);
            Assert.That(StorageRetry.IsTransient(new TimeoutRejectedException()), Is.True);
        });
    }

    [Test]
    public async Task Build_TransientThenSuccess_RetriesAndReturns()
    {
        var calls = 0;
        var retries = new List<int>();
        var pipeline = StorageRetry.Build(new StorageRetryOptions { BaseDelay = TimeSpan.FromMilliseconds(1), OnRetry = (n, _) => retries.Add(n) });
        var result = await pipeline.ExecuteAsync(_ => ++calls < 3 ? throw new RequestFailedException(503, "busy") : ValueTask.FromResult(calls));
        Assert.Multiple(() =>
        {
            Assert.That(result, Is.EqualTo(3));
            Assert.That(retries, Is.EqualTo(new[] { 1, 2 }));
        });
    }

    [Test]
    public void Build_FinalFailure_ThrowsAtOnceWithoutRetry()
    {
        var calls = 0;
        var pipeline = StorageRetry.Build(new StorageRetryOptions { BaseDelay = TimeSpan.FromMilliseconds(1) });
        Assert.ThrowsAsync<RequestFailedException>(async () =>
            await pipeline.ExecuteAsync<int>(_ => { calls++; throw new RequestFailedException(412, "condition not met"); }));
        Assert.That(calls, Is.EqualTo(1));
    }

    [Test]
    public void Build_EveryAttemptHangs_EachTimesOutThenGivesUp()
    {
        var calls = 0;
        var pipeline = StorageRetry.Build(new StorageRetryOptions
        {
            MaxRetryAttempts = 2, BaseDelay = TimeSpan.FromMilliseconds(1), AttemptTimeout = TimeSpan.FromMilliseconds(100),
        });
        Assert.ThrowsAsync<TimeoutRejectedException>(async () =>
            await pipeline.ExecuteAsync(async ct => { calls++; await Task.Delay(Timeout.Infinite, ct); }));
        Assert.That(calls, Is.EqualTo(3));
    }

    [Test]
    public async Task LoggingTo_Retry_LogsStatusAndLocationButNotTheMessage()
    {
        var lines = new List<string>();
        var options = StorageRetryOptions.LoggingTo(lines.Add, "azure://acct/ckpt");
        var pipeline = StorageRetry.Build(new StorageRetryOptions { BaseDelay = TimeSpan.FromMilliseconds(1), OnRetry = options.OnRetry });
        var calls = 0;
        await pipeline.ExecuteAsync(_ => ++calls < 2 ? throw new RequestFailedException(503, "sig=SECRETSIGNATURE") : ValueTask.CompletedTask);
        Assert.That(lines, Is.EqualTo(new[] { "storage azure://acct/ckpt: retry 1/6 after HTTP 503" }));
    }
}
