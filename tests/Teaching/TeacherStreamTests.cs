using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using NUnit.Framework;
using Training.Shared.Teaching;

namespace Training.Tests.Teaching;

[CancelAfter(30_000)]
public class TeacherStreamTests
{
    private const string Tokenizer = "test-tokenizer-v1";
    private readonly List<IDisposable> _owned = [];
    private readonly ConcurrentQueue<string> _log = new();

    [TearDown]
    public void TearDown()
    {
        lock (_owned)
            for (var i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
        if (TestContext.CurrentContext.Result.Outcome.Status != NUnit.Framework.Interfaces.TestStatus.Passed)
            foreach (var line in _log) TestContext.Out.WriteLine(line);
    }

    private (TeacherStreamServer Server, TestScorer Scorer) Serve(TimeSpan? delay = null, string tokenizer = Tokenizer)
    {
        var scorer = new TestScorer(tokenizerId: tokenizer, delay: delay);
        var server = TeacherStreamServer.Start("127.0.0.1", 0, scorer, line => _log.Enqueue("server: " + line));
        _owned.Add(server);
        return (server, scorer);
    }

    private TeacherPool Pool(IReadOnlyList<IPEndPoint> endpoints, TimeSpan? wait = null, TimeSpan? requestTimeout = null, string tokenizer = Tokenizer,
        TeacherForm form = TeacherForm.Causal)
    {
        var pool = new TeacherPool(tokenizer, new TeacherPoolOptions
        {
            Form = form,
            Log = line => _log.Enqueue("pool: " + line),
            WaitForTeacher = wait ?? TimeSpan.FromSeconds(10),
            RequestTimeout = requestTimeout ?? TimeSpan.FromSeconds(10),
        });
        pool.UpdateEndpoints(endpoints);
        _owned.Add(pool);
        return pool;
    }

    /// <summary>An endpoint nothing listens on: a server started and stopped again.</summary>
    private static IPEndPoint DeadEndpoint()
    {
        using var server = TeacherStreamServer.Start("127.0.0.1", 0, new TestScorer());
        return server.Endpoint;
    }

    private static void AssertSame(TeacherScores actual, TeacherScores expected)
    {
        Assert.That((actual.RequestId, actual.Vocab, actual.Transport, actual.K), Is.EqualTo((expected.RequestId, expected.Vocab, expected.Transport, expected.K)));
        TeacherFramesTests.AssertBits(actual.Values, expected.Values);
        TeacherFramesTests.AssertBits(actual.Tail, expected.Tail);
        Assert.That(actual.Indices, Is.EqualTo(expected.Indices));
    }

    private static TeacherScores Direct(TeacherScoreRequest request) => new TestScorer().Score(request);

    [Test]
    public async Task FullAndTopKScores_ThroughServerAndPool_EqualTheScorersAnswerBitForBit()
    {
        var (server, scorer) = Serve();
        var pool = Pool([server.Endpoint]);
        foreach (var request in new[] { TestScorer.Request(7, 1, TeacherTransport.Full), TestScorer.Request(8, 2, TeacherTransport.TopK, topK: 3), TestScorer.Request(9, 3, TeacherTransport.TopK, topK: 50) with { Temperature = 2f } })
            AssertSame(await pool.ScoreAsync(request, CancellationToken.None), Direct(request));
        Assert.That(scorer.Calls, Is.EqualTo(3));
        var stats = pool.Statistics;
        Assert.That((stats.Requests, stats.Retries, stats.TeachersLost), Is.EqualTo((3L, 0L, 0L)));
        Assert.That(stats.BytesSent, Is.GreaterThan(0));
        Assert.That(stats.BytesReceived, Is.GreaterThan(3 * 50 * 4));
    }

    [Test]
    public void TokenizerMismatch_ThrowsTeacherMismatchException()
    {
        var (server, _) = Serve(tokenizer: "teacher-tok");
        var pool = Pool([server.Endpoint], tokenizer: "student-tok");
        var error = Assert.ThrowsAsync<TeacherMismatchException>(() => pool.ScoreAsync(TestScorer.Request(1, 1), CancellationToken.None));
        Assert.That(error!.Message, Does.Contain("the student's tokenizer student-tok differs from the teacher's teacher-tok"));
    }

    [Test]
    public void AStudentAskingForAnEncoderDecoderTeacher_IsRefusedByADecoderOnlyOne()
    {
        var (server, scorer) = Serve();
        var pool = Pool([server.Endpoint], form: TeacherForm.EncoderDecoder);
        var error = Assert.ThrowsAsync<TeacherMismatchException>(() => pool.ScoreAsync(TestScorer.Request(1, 1), CancellationToken.None));
        Assert.That(error!.Message, Does.Contain("the student asks an encoder-decoder teacher").And.Contain("this teacher is a decoder-only model"));
        Assert.That(scorer.Calls, Is.Zero, "refused at the handshake, before any scoring");
    }

    [Test]
    public async Task InvalidRequestsAndScorerFailures_AnswerAnError_AndTheConnectionStaysOpen()
    {
        var (server, _) = Serve();
        var pool = Pool([server.Endpoint]);
        var badToken = TestScorer.Request(1, 1);
        badToken.Rows[1][2] = 999;
        Assert.That(Assert.ThrowsAsync<InvalidOperationException>(() => pool.ScoreAsync(badToken, CancellationToken.None))!.Message, Does.Contain("999").And.Contain("vocabulary"));
        var badK = TestScorer.Request(2, 1, TeacherTransport.TopK, topK: 51);
        Assert.That(Assert.ThrowsAsync<InvalidOperationException>(() => pool.ScoreAsync(badK, CancellationToken.None))!.Message, Does.Contain("TopK 51"));
        var failing = TestScorer.Request(3, 1) with { Temperature = TestScorer.FailingTemperature };
        Assert.That(Assert.ThrowsAsync<InvalidOperationException>(() => pool.ScoreAsync(failing, CancellationToken.None))!.Message, Does.Contain("overflowed"));

        var good = TestScorer.Request(4, 1);
        AssertSame(await pool.ScoreAsync(good, CancellationToken.None), Direct(good));
        Assert.That(pool.Statistics.TeachersLost, Is.EqualTo(0), "errors answer requests; they do not drop the teacher");
    }

    [Test]
    public async Task HostileClients_DoNotStopTheServerServingAGoodOne()
    {
        var (server, _) = Serve();
        async Task Send(byte[] bytes)
        {
            using var client = new TcpClient();
            await client.ConnectAsync(server.Endpoint);
            var stream = client.GetStream();
            await stream.WriteAsync(bytes);
            await stream.FlushAsync();
            client.Client.Shutdown(SocketShutdown.Send); // a frame cut short ends with the stream
            var buffer = new byte[256];
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            while (await stream.ReadAsync(buffer, wait.Token) > 0) { } // the server closes the connection
        }
        var random = new Random(1);
        var garbage = new byte[4096];
        random.NextBytes(garbage);
        await Send(garbage);
        await Send([0xFF, 0xFF, 0xFF, 0x7F, 1, 1]);                                 // a 2 GiB length
        await Send([.. TeacherFrames.EncodeHello(Tokenizer), 9, 0, 0, 0, 1, 3, 1]);   // a request cut short after the handshake
        await Send([.. TeacherFrames.EncodeHello(Tokenizer), .. TeacherFrames.EncodeHello(Tokenizer)]);
        using var silent = new TcpClient();
        await silent.ConnectAsync(server.Endpoint);                                  // connects and says nothing

        var pool = Pool([server.Endpoint]);
        var request = TestScorer.Request(3, 4, TeacherTransport.Full);
        AssertSame(await pool.ScoreAsync(request, CancellationToken.None), Direct(request));
        Assert.That(_log, Has.Some.Contain("closing the connection"));
    }

    [Test]
    public async Task TwoTeachers_ShareConcurrentRequests_OnOneScoringThreadEach()
    {
        var (a, scorerA) = Serve(TimeSpan.FromMilliseconds(5));
        var (b, scorerB) = Serve(TimeSpan.FromMilliseconds(5));
        var pool = Pool([a.Endpoint, b.Endpoint]);
        var requests = Enumerable.Range(0, 40).Select(i => TestScorer.Request(i, i)).ToArray();
        var answers = await Task.WhenAll(requests.Select(r => pool.ScoreAsync(r, CancellationToken.None)));
        for (var i = 0; i < requests.Length; i++) AssertSame(answers[i], Direct(requests[i]));
        Assert.That(scorerA.Calls, Is.GreaterThan(5));
        Assert.That(scorerB.Calls, Is.GreaterThan(5));
        Assert.That(scorerA.Calls + scorerB.Calls, Is.EqualTo(40));
        Assert.That(scorerA.OneThread && scorerB.OneThread, Is.True, "each server calls its scorer from one thread");
    }

    [Test]
    public async Task ATeacherStoppingMidStream_LosesNoRequest()
    {
        var (a, scorerA) = Serve(TimeSpan.FromMilliseconds(2));
        var (b, _) = Serve(TimeSpan.FromMilliseconds(2));
        var pool = Pool([a.Endpoint, b.Endpoint]);
        var requests = Enumerable.Range(0, 200).Select(i => TestScorer.Request(1000 + i, i, i % 3 == 0 ? TeacherTransport.Full : TeacherTransport.TopK)).ToArray();
        var pending = requests.Select(r => pool.ScoreAsync(r, CancellationToken.None)).ToArray();
        var clock = Stopwatch.StartNew();
        while (scorerA.Calls < 20 && clock.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(5);
        a.Dispose(); // the teacher process dies: its sockets close

        var answers = await Task.WhenAll(pending);
        for (var i = 0; i < requests.Length; i++) AssertSame(answers[i], Direct(requests[i]));
        var stats = pool.Statistics;
        Assert.That(stats.TeachersLost, Is.GreaterThanOrEqualTo(1));
        Assert.That(stats.Retries, Is.GreaterThanOrEqualTo(1), "requests in flight on the lost teacher were re-sent");
        Assert.That(_log, Has.Some.Contain($"teacher {a.Endpoint} lost"));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
    }

    /// <summary>A teacher that welcomes every student and then never answers (closeOnRequest: drops the connection at the first request).</summary>
    private IPEndPoint FakeTeacher(bool closeOnRequest)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        _owned.Add(listener);
        _ = Task.Run(async () =>
        {
            while (true)
            {
                var client = await listener.AcceptTcpClientAsync();
                lock (_owned) _owned.Add(client);
                await TeacherFrames.ReadFrameAsync(client.GetStream(), 1 << 20);
                await TeacherFrames.WriteFrameAsync(client.GetStream(), TeacherFrames.EncodeWelcome(50, Tokenizer));
                if (!closeOnRequest) continue;
                await TeacherFrames.ReadFrameAsync(client.GetStream(), 1 << 20);
                client.Dispose();
            }
        });
        return (IPEndPoint)listener.LocalEndpoint;
    }

    [Test]
    public async Task ATeacherThatStopsAnswering_IsGivenUpAfterTheRequestTimeout()
    {
        var stopped = FakeTeacher(closeOnRequest: false); // a SIGSTOPped process keeps its socket open
        var (good, _) = Serve();
        var pool = Pool([stopped, good.Endpoint], requestTimeout: TimeSpan.FromMilliseconds(500));
        var requests = Enumerable.Range(0, 6).Select(i => TestScorer.Request(i, i)).ToArray();
        var clock = Stopwatch.StartNew();
        var answers = await Task.WhenAll(requests.Select(r => pool.ScoreAsync(r, CancellationToken.None)));
        for (var i = 0; i < requests.Length; i++) AssertSame(answers[i], Direct(requests[i]));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(4)));
        Assert.That(pool.Statistics.TeachersLost, Is.GreaterThanOrEqualTo(1));
        Assert.That(_log, Has.Some.Contain("request timeout"));
    }

    [Test]
    public void ARequestThatLosesEveryTeacher_FailsAfterMaxSends()
    {
        var teachers = Enumerable.Range(0, 4).Select(_ => FakeTeacher(closeOnRequest: true)).ToArray();
        var pool = Pool(teachers);
        var error = Assert.ThrowsAsync<TeacherUnavailableException>(() => pool.ScoreAsync(TestScorer.Request(5, 1), CancellationToken.None));
        Assert.That(error!.Message, Does.Contain($"each of {TeacherPool.MaxSends} sends").And.Contain("closed the connection"));
        Assert.That(pool.Statistics.Retries, Is.EqualTo(TeacherPool.MaxSends));
    }

    [Test]
    public void AllTeachersDown_ThrowsTeacherUnavailableWithinWaitForTeacher()
    {
        var dead = DeadEndpoint();
        var pool = Pool([dead], wait: TimeSpan.FromSeconds(1));
        var clock = Stopwatch.StartNew();
        var error = Assert.ThrowsAsync<TeacherUnavailableException>(() => pool.ScoreAsync(TestScorer.Request(1, 1), CancellationToken.None));
        Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(0.9)).And.LessThan(TimeSpan.FromSeconds(3)));
        Assert.That(error!.Message, Does.Contain(dead.ToString()).And.Contain("refused"));
        Assert.That(pool.Statistics.TeachersLost, Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public async Task ANewTeacherListedAfterAllWereLost_TakesThePendingRequest()
    {
        var dead = DeadEndpoint();
        var pool = Pool([dead], wait: TimeSpan.FromSeconds(10));
        var request = TestScorer.Request(77, 5, TeacherTransport.Full);
        var pending = pool.ScoreAsync(request, CancellationToken.None);
        await Task.Delay(300);
        Assert.That(pending.IsCompleted, Is.False, "the request waits for a teacher");

        var (fresh, _) = Serve();
        pool.UpdateEndpoints([dead, fresh.Endpoint]);
        Assert.That(await Task.WhenAny(pending, Task.Delay(3000)), Is.SameAs(pending));
        AssertSame(await pending, Direct(request));
    }

    [Test]
    public async Task DisposingThePool_FailsPendingRequestsWithObjectDisposed()
    {
        var (server, _) = Serve(TimeSpan.FromMilliseconds(500));
        var pool = Pool([server.Endpoint]);
        var pending = pool.ScoreAsync(TestScorer.Request(1, 1), CancellationToken.None);
        var waiting = Pool([DeadEndpoint()]).ScoreAsync(TestScorer.Request(2, 1), CancellationToken.None);
        await Task.Delay(100);
        pool.Dispose();
        Assert.ThrowsAsync<ObjectDisposedException>(() => pending);
        _owned[^1].Dispose(); // the pool waiting for a teacher
        Assert.ThrowsAsync<ObjectDisposedException>(() => waiting);
        Assert.ThrowsAsync<ObjectDisposedException>(() => pool.ScoreAsync(TestScorer.Request(3, 1), CancellationToken.None));
    }
}
