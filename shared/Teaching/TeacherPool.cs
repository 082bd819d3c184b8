using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Training.Shared.Teaching;

/// <summary>Settings of a <see cref="TeacherPool"/>.</summary>
public sealed class TeacherPoolOptions
{
    public Action<string>? Log { get; init; }

    /// <summary>Called (on a pool thread) when a teacher's connection fails, with its endpoint and the reason: the
    /// student's coordinator replaces the teacher without waiting for the cluster to notice a dead worker.</summary>
    public Action<System.Net.IPEndPoint, string>? TeacherLost { get; init; }
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A teacher that stops answering (a stopped process keeps its socket open) is given up after this long.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>With no live teacher, a request waits this long for <see cref="TeacherPool.UpdateEndpoints"/> or a backoff to expire.</summary>
    public TimeSpan WaitForTeacher { get; init; } = TimeSpan.FromSeconds(120);

    public TeacherStreamLimits Limits { get; init; } = TeacherStreamLimits.Default;

    /// <summary>The kind of teacher the student asks for (told in the Hello; a teacher of the other kind refuses it).</summary>
    public TeacherForm Form { get; init; } = TeacherForm.Causal;
}

/// <summary>Counters since the pool was made; <see cref="TeacherPool.Statistics"/> returns a snapshot.</summary>
public sealed record TeacherPoolStatistics(long Requests, long Retries, long TeachersLost, long BytesSent, long BytesReceived);

/// <summary>
/// A student rank's view of its teachers: one lazily opened connection per endpoint, each request sent to the live
/// teacher with the fewest requests in flight (ties round robin), pipelined and matched by id. A teacher whose
/// connection fails is marked lost and its requests move to another; it is tried again after a backoff or when
/// <see cref="UpdateEndpoints"/> lists it again. So a teacher process that dies costs the students a re-send, not the run.
/// </summary>
public sealed class TeacherPool : IDisposable
{
    private static readonly TimeSpan Backoff = TimeSpan.FromSeconds(2);

    /// <summary>A request whose every send loses its teacher (say it crashes the teacher) fails after this many, instead of looping.</summary>
    public const int MaxSends = 8;

    private readonly string _tokenizerId;
    private readonly TeacherPoolOptions _options;
    private readonly Action<string> _log;
    private readonly object _gate = new();
    private readonly List<Link> _links = [];
    private readonly CancellationTokenSource _disposing = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _roundRobin;
    private long _nextWireId;
    private long _requests, _retries, _teachersLost, _bytesSent, _bytesReceived;
    private int _disposed;

    public TeacherPool(string tokenizerId, TeacherPoolOptions? options = null)
    {
        _tokenizerId = tokenizerId;
        _options = options ?? new TeacherPoolOptions();
        _log = _options.Log ?? (_ => { });
    }

    public TeacherPoolStatistics Statistics => new(Interlocked.Read(ref _requests), Interlocked.Read(ref _retries),
        Interlocked.Read(ref _teachersLost), Interlocked.Read(ref _bytesSent), Interlocked.Read(ref _bytesReceived));

    /// <summary>
    /// Replaces the set of teachers. New endpoints are connected when first chosen; listed lost ones are tried again at
    /// once; dropped ones are closed and their requests move. Thread-safe.
    /// </summary>
    public void UpdateEndpoints(IReadOnlyList<IPEndPoint> endpoints)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var dropped = new List<Link>();
        TaskCompletionSource changed;
        lock (_gate)
        {
            foreach (var link in _links.Where(l => !endpoints.Contains(l.Endpoint)).ToList())
            {
                link.Removed = true;
                _links.Remove(link);
                dropped.Add(link);
            }
            foreach (var endpoint in endpoints.Distinct())
            {
                var link = _links.Find(l => l.Endpoint.Equals(endpoint));
                if (link is null) _links.Add(new Link(endpoint));
                else link.RetryAfter = TimeSpan.Zero;
            }
            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        foreach (var link in dropped)
        {
            _log($"teacher {link.Endpoint} removed from the teacher list");
            Close(link, "the teacher was removed from the teacher list");
        }
        changed.TrySetResult();
    }

    /// <summary>
    /// Scores a request on some live teacher, re-sending it elsewhere when that teacher is lost. Throws
    /// <see cref="TeacherMismatchException"/> (tokenizer differs), <see cref="InvalidOperationException"/> (the teacher
    /// answered an error), <see cref="TeacherUnavailableException"/> (no teacher within WaitForTeacher) or
    /// <see cref="ObjectDisposedException"/> (the pool was disposed).
    /// </summary>
    public async Task<TeacherScores> ScoreAsync(TeacherScoreRequest request, CancellationToken cancellation) =>
        Decode(await Send(request, cancellation), request);

    /// <summary>
    /// <see cref="ScoreAsync"/>, blocking, with the answer decoded on the calling thread. A trainer scores this way:
    /// the answer's large arrays are then allocated on the trainer's own thread, so the collections they cause run
    /// there, between TorchSharp calls, and not on a socket thread while the trainer is inside one (TorchSharp frees an
    /// operator's temporary Scalar in a finalizer, which a collection elsewhere can run while the call still uses it).
    /// </summary>
    public TeacherScores Score(TeacherScoreRequest request, CancellationToken cancellation = default) =>
        Decode(Send(request, cancellation).GetAwaiter().GetResult(), request);

    /// <summary>Decodes a Scores body read into a pooled buffer, and gives the buffer back.</summary>
    private static TeacherScores Decode(RawAnswer answer, TeacherScoreRequest request)
    {
        try
        {
            return TeacherFrames.DecodeScores(answer.Frame.Body.Span) with { RequestId = request.RequestId };
        }
        finally
        {
            Buffers.Return(answer.Rented);
        }
    }

    /// <summary>Frame buffers of the read loops; large answers reuse them instead of allocating per request.</summary>
    private static System.Buffers.ArrayPool<byte> Buffers => System.Buffers.ArrayPool<byte>.Shared;

    /// <summary>A Scores frame as received, its body still in a buffer rented from <see cref="Buffers"/>.</summary>
    private sealed record RawAnswer(TeacherFrame Frame, byte[] Rented);

    private async Task<RawAnswer> Send(TeacherScoreRequest request, CancellationToken cancellation)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Interlocked.Increment(ref _requests);
        var wireId = Interlocked.Increment(ref _nextWireId);
        var frame = TeacherFrames.EncodeRequest(request, wireId);
        if (TeacherFrames.PayloadLength(frame) > _options.Limits.MaxFrameBytes)
            throw new ArgumentException($"request {request.RequestId} takes {TeacherFrames.PayloadLength(frame)} bytes, over the frame limit of {_options.Limits.MaxFrameBytes}");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellation, _disposing.Token);
        var token = linked.Token;
        TimeSpan? deadline = null;
        var sends = 0;
        string? lastLoss = null;
        try
        {
            while (true)
            {
                token.ThrowIfCancellationRequested();
                Link? link;
                Task changed;
                TimeSpan wakeAt;
                var now = Now;
                lock (_gate)
                {
                    link = Pick(now);
                    changed = _changed.Task;
                    wakeAt = _links.Where(l => l.RetryAfter > now).Select(l => l.RetryAfter).DefaultIfEmpty(TimeSpan.MaxValue).Min();
                }
                if (link is null)
                {
                    deadline ??= now + _options.WaitForTeacher;
                    if (now >= deadline) throw Unavailable();
                    var wait = (wakeAt < deadline.Value ? wakeAt : deadline.Value) - now;
                    using (var sleep = CancellationTokenSource.CreateLinkedTokenSource(token))
                    {
                        await Task.WhenAny(changed, Task.Delay(wait + TimeSpan.FromMilliseconds(1), sleep.Token));
                        sleep.Cancel(); // woken by UpdateEndpoints: drop the timer now, not at the deadline
                    }
                    continue;
                }

                var sending = false;
                try
                {
                    var connection = await Connect(link, token);
                    deadline = null;
                    sending = true;
                    if (++sends > MaxSends)
                        throw new TeacherUnavailableException($"request {request.RequestId} lost its teacher on each of {MaxSends} sends; the last: {lastLoss}");
                    return await connection.Request(wireId, frame, token);
                }
                catch (LinkFailedException e)
                {
                    // The teacher is marked lost; send the request to another.
                    lastLoss = $"{link.Endpoint}: {e.Message}";
                    if (sending) Interlocked.Increment(ref _retries);
                }
                finally
                {
                    lock (_gate) link.InFlight--;
                }
            }
        }
        catch (Exception e) when (_disposing.IsCancellationRequested && e is not ObjectDisposedException)
        {
            throw new ObjectDisposedException(nameof(TeacherPool), $"the teacher pool was disposed while request {request.RequestId} was pending");
        }
    }

    /// <summary>Under the gate: the live teacher with the fewest requests in flight, ties round robin; null when none is live.</summary>
    private Link? Pick(TimeSpan now)
    {
        Link? best = null;
        var bestIndex = 0;
        for (var n = 0; n < _links.Count; n++)
        {
            var i = (_roundRobin + n) % _links.Count;
            var link = _links[i];
            var live = link.Connecting is not null || link.RetryAfter <= now;
            if (!live || (best is not null && link.InFlight >= best.InFlight)) continue;
            best = link;
            bestIndex = i;
        }
        if (best is null) return null;
        _roundRobin = (bestIndex + 1) % _links.Count;
        best.InFlight++;
        return best;
    }

    /// <summary>The link's connection, opening it (once, shared by concurrent callers) when there is none.</summary>
    private async Task<Connection> Connect(Link link, CancellationToken token)
    {
        Task<Connection> opening;
        lock (_gate) opening = link.Connecting ??= Open(link);
        try
        {
            return await opening.WaitAsync(token);
        }
        catch (Exception e) when (!token.IsCancellationRequested && opening.IsFaulted)
        {
            MarkLost(link, opening, e.Message);
            if (e is TeacherMismatchException) throw;
            throw new LinkFailedException(e.Message);
        }
    }

    private async Task<Connection> Open(Link link)
    {
        await Task.Yield(); // never run the connect under the caller's lock
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_disposing.Token);
        timeout.CancelAfter(_options.ConnectTimeout);
        var socket = new Socket(link.Endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(link.Endpoint, timeout.Token);
            var stream = new NetworkStream(socket, ownsSocket: true);
            var hello = TeacherFrames.EncodeHello(_tokenizerId, _options.Form);
            await TeacherFrames.WriteFrameAsync(stream, hello, timeout.Token);
            var answer = await TeacherFrames.ReadFrameAsync(stream, _options.Limits.MaxFrameBytes, timeout.Token)
                ?? throw new IOException("the teacher closed the connection during the handshake");
            Interlocked.Add(ref _bytesSent, hello.Length);
            Interlocked.Add(ref _bytesReceived, TeacherFrames.HeaderBytes + 2 + answer.Body.Length);
            switch (answer.Type)
            {
                case TeacherMessageType.Error:
                    throw new TeacherMismatchException($"teacher {link.Endpoint} refused this student: {TeacherFrames.DecodeError(answer.Body.Span).Message}");
                case TeacherMessageType.Welcome:
                    var welcome = TeacherFrames.DecodeWelcome(answer.Body.Span);
                    if (welcome.TokenizerId != _tokenizerId)
                        throw new TeacherMismatchException($"teacher {link.Endpoint}: the student's tokenizer {_tokenizerId} differs from the teacher's {welcome.TokenizerId}");
                    if (welcome.Form != _options.Form)
                        throw new TeacherMismatchException($"teacher {link.Endpoint} is a {welcome.Form} model, and the student asked for a {_options.Form} one");
                    return new Connection(this, link, socket, stream);
                default:
                    throw new InvalidDataException($"expected Welcome from the teacher, got {answer.Type}");
            }
        }
        catch (OperationCanceledException) when (!_disposing.IsCancellationRequested)
        {
            socket.Dispose();
            throw new TimeoutException($"connecting and handshaking took longer than {_options.ConnectTimeout.TotalSeconds:0.###} s");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Marks a teacher lost when <paramref name="current"/> (a connect task or a connection) is still its current one.</summary>
    private void MarkLost(Link link, object current, string reason)
    {
        lock (_gate)
        {
            var opening = link.Connecting;
            if (opening is null || !(ReferenceEquals(opening, current) || (opening.IsCompletedSuccessfully && ReferenceEquals(opening.Result, current)))) return;
            link.Connecting = null;
            link.RetryAfter = Now + Backoff;
            link.LastFailure = reason;
            if (link.Removed) return;
        }
        Interlocked.Increment(ref _teachersLost);
        _log($"teacher {link.Endpoint} lost: {reason}; its requests move to another teacher, retrying it in {Backoff.TotalSeconds:0} s");
        _options.TeacherLost?.Invoke(link.Endpoint, reason);
    }

    private static void Close(Link link, string reason)
    {
        var opening = link.Connecting;
        if (opening is null) return;
        opening.ContinueWith(t => t.Result.Fail(reason), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
    }

    private TeacherUnavailableException Unavailable()
    {
        string tried;
        lock (_gate)
            tried = _links.Count == 0
                ? "no teacher endpoints are known"
                : "tried " + string.Join("; ", _links.Select(l => $"{l.Endpoint} ({l.LastFailure ?? "not tried"})"));
        return new TeacherUnavailableException($"no teacher was available within {_options.WaitForTeacher.TotalSeconds:0.###} s: {tried}");
    }

    private static TimeSpan Now => TimeSpan.FromMilliseconds(Environment.TickCount64);

    /// <summary>Fails every pending request with <see cref="ObjectDisposedException"/> and closes every connection.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _disposing.Cancel();
        List<Link> links;
        lock (_gate)
        {
            links = [.. _links];
            foreach (var link in links) link.Removed = true;
            _links.Clear();
            _changed.TrySetResult();
        }
        foreach (var link in links) Close(link, "the teacher pool was disposed");
    }

    private sealed class Link(IPEndPoint endpoint)
    {
        public IPEndPoint Endpoint { get; } = endpoint;
        public bool Removed;
        public int InFlight;
        public TimeSpan RetryAfter = TimeSpan.Zero;
        public string? LastFailure;

        /// <summary>The connection being opened or open; null while lost (or never tried).</summary>
        public Task<Connection>? Connecting;
    }

    /// <summary>Raised inside the pool when a connection failed under a request: the request goes to another teacher.</summary>
    private sealed class LinkFailedException(string message) : Exception(message);

    /// <summary>One open, handshaken connection: pipelined requests, answers matched by wire id by one reader task.</summary>
    private sealed class Connection
    {
        private readonly TeacherPool _pool;
        private readonly Link _link;
        private readonly Socket _socket;
        private readonly NetworkStream _stream;
        private readonly ConcurrentDictionary<long, TaskCompletionSource<RawAnswer>> _pending = new();
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private string? _failure;

        public Connection(TeacherPool pool, Link link, Socket socket, NetworkStream stream)
        {
            _pool = pool;
            _link = link;
            _socket = socket;
            _stream = stream;
            _ = ReadLoop();
        }

        public async Task<RawAnswer> Request(long wireId, byte[] frame, CancellationToken token)
        {
            var answer = new TaskCompletionSource<RawAnswer>(TaskCreationOptions.RunContinuationsAsynchronously);
            _pending[wireId] = answer;
            try
            {
                // Added before this check, so a failure either sees this request or is seen here.
                if (Volatile.Read(ref _failure) is { } failure) throw new LinkFailedException(failure);
                await _writeLock.WaitAsync(token);
                try
                {
                    // Not the caller's token: a write cancelled half way would corrupt the stream for every request.
                    using var writeTimeout = CancellationTokenSource.CreateLinkedTokenSource(_pool._disposing.Token);
                    writeTimeout.CancelAfter(_pool._options.RequestTimeout);
                    await TeacherFrames.WriteFrameAsync(_stream, frame, writeTimeout.Token);
                    Interlocked.Add(ref _pool._bytesSent, frame.Length);
                }
                catch (Exception e)
                {
                    Fail($"sending failed: {e.GetType().Name}: {e.Message}");
                    throw new LinkFailedException(_failure!);
                }
                finally
                {
                    _writeLock.Release();
                }
                try
                {
                    return await answer.Task.WaitAsync(_pool._options.RequestTimeout, token);
                }
                catch (TimeoutException)
                {
                    Fail($"no answer within the request timeout of {_pool._options.RequestTimeout.TotalSeconds:0.###} s");
                    throw new LinkFailedException(_failure!);
                }
            }
            finally
            {
                _pending.TryRemove(wireId, out _);
            }
        }

        private async Task ReadLoop()
        {
            try
            {
                while (true)
                {
                    // Into a pooled buffer, decoded by the requester (see Score): this thread allocates nothing large.
                    var read = await TeacherFrames.ReadFrameAsync(_stream, _pool._options.Limits.MaxFrameBytes, Buffers);
                    if (read is not { } received)
                    {
                        Fail("the teacher closed the connection");
                        return;
                    }
                    var (frame, rented) = received;
                    Interlocked.Add(ref _pool._bytesReceived, TeacherFrames.HeaderBytes + 2 + frame.Body.Length);
                    switch (frame.Type)
                    {
                        case TeacherMessageType.Scores:
                            var id = TeacherFrames.ScoresRequestId(frame.Body.Span);
                            if (_pending.TryRemove(id, out var answer) && answer.TrySetResult(new RawAnswer(frame, rented))) break;
                            Buffers.Return(rented);
                            break;
                        case TeacherMessageType.Error:
                            var error = TeacherFrames.DecodeError(frame.Body.Span);
                            Buffers.Return(rented);
                            if (error.RequestId == -1)
                            {
                                Fail($"the teacher closed the session: {error.Message}");
                                return;
                            }
                            if (_pending.TryRemove(error.RequestId, out var failed))
                                failed.TrySetException(new InvalidOperationException($"teacher {_link.Endpoint}: {error.Message}"));
                            break;
                        default:
                            Buffers.Return(rented);
                            throw new InvalidDataException($"unexpected {frame.Type} frame from the teacher");
                    }
                }
            }
            catch (Exception e)
            {
                Fail($"{e.GetType().Name}: {e.Message}");
            }
        }

        /// <summary>Closes the connection once: the teacher is marked lost and every pending request moves on.</summary>
        public void Fail(string reason)
        {
            if (Interlocked.CompareExchange(ref _failure, reason, null) is not null) return;
            _pool.MarkLost(_link, this, reason);
            try
            {
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception)
            {
                // already gone
            }
            _stream.Dispose();
            foreach (var id in _pending.Keys)
                if (_pending.TryRemove(id, out var answer)) answer.TrySetException(new LinkFailedException(reason));
        }
    }
}
