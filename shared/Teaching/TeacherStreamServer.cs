using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace Training.Shared.Teaching;

/// <summary>
/// The teacher's side of the stream: accepts one connection per student rank, checks each student's tokenizer, and
/// scores the requests of all connections on ONE dedicated thread, in arrival order, because the scorer wraps a
/// TorchSharp model that must stay on one thread. A bad request or a scorer exception answers an Error frame; a
/// malformed frame closes that connection only. Nothing a client sends stops the server.
/// </summary>
public sealed class TeacherStreamServer : IDisposable
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(30);

    private readonly TcpListener _listener;
    private readonly ITeacherScorer _scorer;
    private readonly Action<string> _log;
    private readonly TeacherStreamLimits _limits;
    private readonly CancellationTokenSource _stop = new();
    private readonly BlockingCollection<(Connection Connection, TeacherScoreRequest Request)> _work = new();
    private readonly ConcurrentDictionary<Connection, byte> _connections = new();
    private readonly Thread _scoringThread;
    private readonly int _vocab;
    private readonly string _tokenizerId;
    private int _disposed;

    public IPEndPoint Endpoint { get; }

    private TeacherStreamServer(TcpListener listener, ITeacherScorer scorer, Action<string> log, TeacherStreamLimits limits)
    {
        _listener = listener;
        _scorer = scorer;
        _log = log;
        _limits = limits;
        _vocab = scorer.VocabSize;
        _tokenizerId = scorer.TokenizerId;
        Endpoint = (IPEndPoint)listener.LocalEndpoint;
        _scoringThread = new Thread(ScoreLoop) { IsBackground = true, Name = "teacher-scorer" };
    }

    /// <summary>Listens on host:port (port 0 = any free port, see <see cref="Endpoint"/>) and starts serving.</summary>
    public static TeacherStreamServer Start(string host, int port, ITeacherScorer scorer, Action<string>? log = null, TeacherStreamLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        var address = IPAddress.TryParse(host, out var parsed) ? parsed
            : Dns.GetHostAddresses(host).OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault()
              ?? throw new ArgumentException($"teacher stream host {host} has no address");
        var listener = new TcpListener(address, port);
        listener.Start();
        var server = new TeacherStreamServer(listener, scorer, log ?? (_ => { }), limits ?? TeacherStreamLimits.Default);
        server._scoringThread.Start();
        _ = server.AcceptLoop();
        server._log($"teacher stream listening on {server.Endpoint} (vocab {server._vocab}, tokenizer {server._tokenizerId})");
        return server;
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e)
            {
                _log($"teacher stream accept failed: {e.Message}");
                continue;
            }
            socket.NoDelay = true;
            var connection = new Connection(this, socket);
            _connections[connection] = 0;
            _ = connection.Run();
        }
    }

    /// <summary>The one thread that touches the scorer.</summary>
    private void ScoreLoop()
    {
        foreach (var (connection, request) in _work.GetConsumingEnumerable())
        {
            if (connection.Closed) continue;
            byte[] frame;
            try
            {
                var scores = _scorer.Score(request);
                if (scores.RequestId != request.RequestId) scores = scores with { RequestId = request.RequestId };
                frame = TeacherFrames.EncodeScores(scores);
                if (TeacherFrames.PayloadLength(frame) > _limits.MaxFrameBytes)
                    frame = TeacherFrames.EncodeError(request.RequestId,
                        $"the scores of request {request.RequestId} take {TeacherFrames.PayloadLength(frame)} bytes, over the frame limit of {_limits.MaxFrameBytes}: use TopK or fewer positions");
            }
            catch (Exception e)
            {
                _log($"teacher scorer failed on request {request.RequestId} from {connection.Remote}: {e.GetType().Name}: {e.Message}");
                frame = TeacherFrames.EncodeError(request.RequestId, $"the teacher's scorer failed: {e.GetType().Name}: {e.Message}");
            }
            connection.Send(frame);
        }
    }

    /// <summary>Checks a request against the scorer; the reason it cannot be scored, or null.</summary>
    private string? Validate(TeacherScoreRequest r)
    {
        if (r.Transport == TeacherTransport.TopK && (r.TopK < 1 || r.TopK > _vocab)) return $"TopK {r.TopK} is outside 1..{_vocab}";
        if (!float.IsFinite(r.Temperature) || r.Temperature <= 0) return $"temperature {r.Temperature} must be positive and finite";
        for (var i = 0; i < r.Rows.Count; i++)
        {
            var row = r.Rows[i];
            for (var j = 0; j < row.Length; j++)
                if ((ulong)row[j] >= (ulong)_vocab) return $"row {i} token {j} is id {row[j]}, outside the teacher's vocabulary 0..{_vocab - 1}";
        }
        return null; // positions were checked against the rows when the frame was decoded
    }

    /// <summary>Stops listening, closes every connection and ends the scoring thread (after the call in progress, if any).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        _listener.Stop();
        foreach (var connection in _connections.Keys) connection.Close();
        _work.CompleteAdding();
        if (!_scoringThread.Join(TimeSpan.FromSeconds(10))) _log("teacher scoring thread still busy 10 s after dispose");
        _log($"teacher stream on {Endpoint} stopped");
    }

    /// <summary>One student's connection: a reader task and a writer task, so a slow student never stalls the scoring thread.</summary>
    private sealed class Connection(TeacherStreamServer server, Socket socket)
    {
        private readonly NetworkStream _stream = new(socket, ownsSocket: true);
        private readonly Channel<byte[]> _outgoing = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
        private int _closed;

        public EndPoint? Remote { get; } = socket.RemoteEndPoint;
        public bool Closed => Volatile.Read(ref _closed) != 0;

        public void Send(byte[] frame) => _outgoing.Writer.TryWrite(frame);

        public async Task Run()
        {
            var writer = WriteLoop();
            try
            {
                if (!await Handshake()) return;
                while (!Closed)
                {
                    var frame = await TeacherFrames.ReadFrameAsync(_stream, server._limits.MaxFrameBytes, server._stop.Token);
                    if (frame is null) return; // the student closed
                    if (frame.Value.Type != TeacherMessageType.ScoreRequest)
                        throw new InvalidDataException($"unexpected {frame.Value.Type} frame after the handshake");
                    var request = TeacherFrames.DecodeRequest(frame.Value.Body.Span);
                    var invalid = server.Validate(request);
                    if (invalid is not null)
                    {
                        Send(TeacherFrames.EncodeError(request.RequestId, $"invalid request {request.RequestId}: {invalid}"));
                        continue;
                    }
                    try
                    {
                        server._work.Add((this, request));
                    }
                    catch (InvalidOperationException)
                    {
                        return; // the server is stopping
                    }
                }
            }
            catch (Exception e) when (e is InvalidDataException or IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                if (!server._stop.IsCancellationRequested && !Closed)
                    server._log($"teacher stream: closing the connection from {Remote}: {e.GetType().Name}: {e.Message}");
            }
            finally
            {
                _outgoing.Writer.TryComplete();
                try
                {
                    await writer.WaitAsync(TimeSpan.FromSeconds(5));
                }
                catch (Exception)
                {
                    // the writer reports its own failures
                }
                Close();
            }
        }

        /// <summary>True when the student's tokenizer matches; otherwise it has been told why and the connection ends.</summary>
        private async Task<bool> Handshake()
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(server._stop.Token);
            timeout.CancelAfter(HandshakeTimeout);
            // A hello is small: a stranger cannot make the server allocate a full frame before saying who it is.
            var frame = await TeacherFrames.ReadFrameAsync(_stream, Math.Min(server._limits.MaxFrameBytes, TeacherFrames.MaxStringBytes + 16), timeout.Token);
            if (frame is null) return false;
            if (frame.Value.Type != TeacherMessageType.Hello) throw new InvalidDataException($"expected a Hello frame first, got {frame.Value.Type}");
            var hello = TeacherFrames.DecodeHello(frame.Value.Body.Span);
            if (hello.TokenizerId != server._tokenizerId)
            {
                var message = $"the student's tokenizer {hello.TokenizerId} differs from the teacher's {server._tokenizerId}";
                server._log($"teacher stream: refusing {Remote}: {message}");
                Send(TeacherFrames.EncodeError(-1, message));
                return false;
            }
            if (hello.Form != server._scorer.Form)
            {
                var message = $"the student asks {FormName(hello.Form)} teacher (distill.relations {(hello.Form == TeacherForm.Causal ? "none" : "logits, miniend-d or miniend-e")}), " +
                              $"and this teacher is {FormName(server._scorer.Form)} model";
                server._log($"teacher stream: refusing {Remote}: {message}");
                Send(TeacherFrames.EncodeError(-1, message));
                return false;
            }
            Send(TeacherFrames.EncodeWelcome(server._vocab, server._tokenizerId, server._scorer.Form));
            return true;
        }

        private async Task WriteLoop()
        {
            try
            {
                await foreach (var frame in _outgoing.Reader.ReadAllAsync())
                    await TeacherFrames.WriteFrameAsync(_stream, frame, server._stop.Token);
            }
            catch (Exception e)
            {
                if (!server._stop.IsCancellationRequested && !Closed)
                    server._log($"teacher stream: sending to {Remote} failed: {e.GetType().Name}: {e.Message}");
                Close();
            }
        }

        public void Close()
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            _outgoing.Writer.TryComplete();
            server._connections.TryRemove(this, out _);
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception)
            {
                // already gone
            }
            _stream.Dispose();
        }
    }

    private static string FormName(TeacherForm form) => form == TeacherForm.Causal ? "a decoder-only" : "an encoder-decoder";
}
