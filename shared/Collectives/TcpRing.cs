using System.Net.Sockets;
using System.Text;

namespace Training.Shared.Collectives;

/// <summary>
/// The CPU collective backend: a ring all-reduce over TCP. Rank r connects to rank (r+1) mod W and accepts rank
/// (r-1) mod W on its <see cref="RingListener"/>; a handshake carrying the group token (trial id + generation,
/// e.g. "t000/g3") and the sender's rank keeps stale and foreign connections out.
/// </summary>
public static class TcpRing
{
    /// <summary>Bytes of float32 partial sums per pipelined segment of a ring step.</summary>
    public const int SegmentBytes = TcpRingGroup.SegmentElements * sizeof(float);

    /// <summary>How long an accepted connection may take to send its hello before it is dropped.</summary>
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Joins this rank into the ring described by <paramref name="endpoints"/> (index = rank). Retries connecting
    /// while peers start, for up to <paramref name="timeout"/>; each later operation must finish within
    /// <paramref name="operationTimeout"/> (default: <paramref name="timeout"/>). World size 1 opens no sockets.
    /// Refused connections (wrong token, rank or world size) are closed and reported through <paramref name="log"/>,
    /// which is also told of failures and may be called from background threads.
    /// </summary>
    /// <exception cref="CollectiveTimeoutException">The ring did not form in time; the message says which side is missing.</exception>
    /// <exception cref="CollectiveException">The successor refused this rank's handshake.</exception>
    public static ICollectiveGroup Connect(RingListener listener, int rank, IReadOnlyList<RingEndpoint> endpoints, string groupToken,
        TimeSpan timeout, CancellationToken cancel = default, TimeSpan? operationTimeout = null, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(listener);
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(groupToken);
        if (endpoints.Count == 0) throw new ArgumentException("the ring needs at least one endpoint (one per rank)", nameof(endpoints));
        if (rank < 0 || rank >= endpoints.Count)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in 0..{endpoints.Count - 1} for {endpoints.Count} endpoints");
        if (Encoding.UTF8.GetByteCount(groupToken) > RingHandshake.MaxStringBytes)
            throw new ArgumentException($"group token is longer than {RingHandshake.MaxStringBytes} bytes", nameof(groupToken));
        if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "the connect timeout must be positive");
        var perOperation = operationTimeout ?? timeout;
        if (perOperation <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(operationTimeout), perOperation, "the operation timeout must be positive");

        if (endpoints.Count == 1) return new SingleRankGroup();

        var formation = new Formation(listener, rank, endpoints, groupToken, log);
        var (toNext, fromPrevious) = formation.RunAsync(timeout, cancel).GetAwaiter().GetResult();
        log?.Invoke($"rank {rank}/{endpoints.Count}: ring '{groupToken}' formed (sending to rank {formation.Next} at {endpoints[formation.Next]})");
        return new TcpRingGroup(rank, endpoints, toNext, fromPrevious, perOperation, log);
    }

    /// <summary>One attempt to form the ring: connecting out and accepting in run at the same time.</summary>
    private sealed class Formation(RingListener listener, int rank, IReadOnlyList<RingEndpoint> endpoints, string groupToken, Action<string>? log)
    {
        private readonly int _world = endpoints.Count;
        private volatile string _connectState = "not tried yet";
        private volatile bool _accepted;

        public int Next => (rank + 1) % _world;
        public int Previous => (rank - 1 + _world) % _world;
        private string Me => $"rank {rank}/{_world}";

        public async Task<(Socket ToNext, Socket FromPrevious)> RunAsync(TimeSpan timeout, CancellationToken cancel)
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            attempt.CancelAfter(timeout);
            var accept = AcceptPreviousAsync(attempt.Token);
            var connect = ConnectNextAsync(attempt.Token);
            // Whichever side fails first (a refusal, say) stops the other at once instead of at the timeout.
            var first = await Task.WhenAny(accept, connect);
            if (first.IsFaulted) attempt.Cancel();
            try
            {
                await Task.WhenAll(accept, connect);
                return (connect.Result, accept.Result);
            }
            catch (Exception)
            {
                if (accept.IsCompletedSuccessfully) accept.Result.Dispose();
                if (connect.IsCompletedSuccessfully) connect.Result.Dispose();
                var refusal = new[] { connect, accept }
                    .Where(t => t.IsFaulted)
                    .SelectMany(t => t.Exception!.InnerExceptions)
                    .OfType<CollectiveException>()
                    .FirstOrDefault();
                if (refusal is not null) throw refusal;
                cancel.ThrowIfCancellationRequested();
                var fault = new[] { connect, accept }.Where(t => t.IsFaulted).SelectMany(t => t.Exception!.InnerExceptions)
                    .FirstOrDefault(e => e is not OperationCanceledException);
                if (fault is not null)
                    throw new CollectiveException($"{Me}: ring '{groupToken}' failed to form: {fault.Message}", fault);
                throw new CollectiveTimeoutException(DescribeTimeout(timeout));
            }
        }

        private string DescribeTimeout(TimeSpan timeout)
        {
            var missing = new List<string>();
            if (!_accepted) missing.Add($"no valid connection from rank {Previous} (at {endpoints[Previous]}) arrived");
            if (_connectState != "connected")
                missing.Add($"could not join rank {Next} at {endpoints[Next]} ({_connectState})");
            return $"{Me}: ring '{groupToken}' did not form within {timeout.TotalSeconds:0.###} s: {string.Join("; ", missing)}";
        }

        private async Task<Socket> ConnectNextAsync(CancellationToken cancel)
        {
            var target = endpoints[Next];
            var delay = TimeSpan.FromMilliseconds(20);
            var attempts = 0;
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                attempts++;
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(target.Host, target.Port, cancel);
                    await RingHandshake.SendHelloAsync(socket, rank, _world, groupToken, cancel);
                    var reply = await RingHandshake.ReadReplyAsync(socket, cancel);
                    if (reply is { Accepted: true })
                    {
                        _connectState = "connected";
                        return socket;
                    }
                    socket.Dispose();
                    if (reply is { } refused)
                        throw new CollectiveException($"{Me}: rank {Next} at {target} refused the ring connection for group '{groupToken}': {refused.Reason}");
                    _connectState = $"connection closed before the handshake reply, attempt {attempts}";
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    _connectState = $"{e.SocketErrorCode}: {e.Message}, attempt {attempts}";
                    if (attempts == 1) log?.Invoke($"{Me}: rank {Next} at {target} is not reachable yet ({e.SocketErrorCode}); retrying");
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
                await Task.Delay(delay, cancel);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 500));
            }
        }

        private async Task<Socket> AcceptPreviousAsync(CancellationToken cancel)
        {
            while (true)
            {
                var socket = await listener.Socket.AcceptAsync(cancel);
                string problem;
                try
                {
                    socket.NoDelay = true;
                    using var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    handshake.CancelAfter(HandshakeTimeout);
                    var hello = await RingHandshake.ReadHelloAsync(socket, handshake.Token);
                    var refusal = Check(hello);
                    if (refusal is null)
                    {
                        await RingHandshake.SendReplyAsync(socket, accepted: true, "", cancel);
                        _accepted = true;
                        return socket;
                    }
                    problem = refusal;
                    await RingHandshake.SendReplyAsync(socket, accepted: false, refusal, handshake.Token);
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    problem = $"no handshake within {HandshakeTimeout.TotalSeconds:0} s";
                }
                catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
                {
                    problem = e.Message;
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
                log?.Invoke($"{Me}: refused a ring connection from {RemoteOf(socket)}: {problem}");
                socket.Dispose();
            }
        }

        private string? Check(RingHandshake.Hello hello)
        {
            if (hello.Version != RingHandshake.ProtocolVersion)
                return $"ring protocol version {hello.Version}, expected {RingHandshake.ProtocolVersion}";
            if (hello.GroupToken != groupToken)
                return $"group token '{hello.GroupToken}' does not match '{groupToken}' (a stale or foreign group)";
            if (hello.WorldSize != _world)
                return $"world size {hello.WorldSize} does not match {_world}";
            if (hello.SenderRank != Previous)
                return $"sender is rank {hello.SenderRank}, but rank {rank} accepts only rank {Previous}";
            return null;
        }

        private static string RemoteOf(Socket socket)
        {
            try
            {
                return socket.RemoteEndPoint?.ToString() ?? "an unknown peer";
            }
            catch (SocketException)
            {
                return "an unknown peer";
            }
        }
    }
}
