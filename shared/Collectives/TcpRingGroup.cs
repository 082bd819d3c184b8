using System.Buffers.Binary;
using System.Net.Sockets;
using System.Numerics;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Training.Shared.Collectives;

/// <summary>
/// A formed TCP ring: one socket to the successor (only sent on) and one from the predecessor (only received on).
/// An all-reduce runs a sender thread and the receiving loop at once (full duplex), so large buffers never
/// deadlock on full socket buffers, and moves each step in segments so that sending segment k of a chunk
/// overlaps receiving and reducing segment k+1.
/// Any failure (timeout, abort, a peer closing its sockets) shuts both sockets down: the blocked thread wakes at
/// once, neighbours see the connection end and fail too, and the group refuses every later call.
/// </summary>
internal sealed class TcpRingGroup : ICollectiveGroup
{
    /// <summary>Elements per pipelined segment: 1 MiB of float32 partial sums.</summary>
    internal const int SegmentElements = 256 * 1024;

    private const int OperationHeaderBytes = 24;
    private const uint OperationMagic = 0x504F5254; // "TROP"

    private readonly Socket _toNext;
    private readonly Socket _fromPrevious;
    private readonly IReadOnlyList<RingEndpoint> _endpoints;
    private readonly TimeSpan _operationTimeout;
    private readonly Action<string>? _log;
    private readonly object _failureLock = new();
    private readonly byte[] _segment = new byte[SegmentElements * sizeof(float)];
    private Failure? _failure;
    private Operation? _running;
    // float32 copy of a bfloat16 buffer; kept between calls because a trainer reduces the same gradient size every step.
    private float[] _widened = [];
    private long _operations;
    private int _busy;

    public TcpRingGroup(int rank, IReadOnlyList<RingEndpoint> endpoints, Socket toNext, Socket fromPrevious, TimeSpan operationTimeout, Action<string>? log)
    {
        Rank = rank;
        WorldSize = endpoints.Count;
        _endpoints = endpoints.ToArray();
        _toNext = toNext;
        _fromPrevious = fromPrevious;
        _operationTimeout = operationTimeout;
        _log = log;
    }

    public int Rank { get; }
    public int WorldSize { get; }

    private int Next => (Rank + 1) % WorldSize;
    private int Previous => (Rank - 1 + WorldSize) % WorldSize;
    private string Me => $"rank {Rank}/{WorldSize}";

    public void AllReduceSum(Span<byte> buffer, ElementType type)
    {
        ThrowIfUnusable();
        var size = type.ByteSize();
        if (buffer.Length % size != 0)
            throw new ArgumentException($"{Me}: all-reduce buffer of {buffer.Length} bytes is not a whole number of {type.Describe()} elements", nameof(buffer));
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("the TCP ring reduces little-endian buffers in place");
        if (Interlocked.Exchange(ref _busy, 1) == 1)
            throw new InvalidOperationException($"{Me}: another collective is running on this group; collectives on one group run one at a time");
        try
        {
            Run(buffer, type);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    public void AllReduceSum(torch.Tensor tensor) => TensorBuffers.AllReduceOnHost(this, tensor);

    public void Abort(string reason) => Fail(FailureKind.Aborted, $"{Me}: the collective group was aborted: {reason}", null, null);

    public void Dispose() => Fail(FailureKind.Aborted, $"{Me}: the collective group was disposed", null, null);

    private unsafe void Run(Span<byte> buffer, ElementType type)
    {
        var elements = buffer.Length / type.ByteSize();
        if (type == ElementType.BFloat16 && _widened.Length < elements) _widened = new float[elements];
        var schedule = new RingSchedule(Rank, WorldSize, elements);
        var number = ++_operations;
        fixed (byte* data = buffer)
        fixed (float* widened = _widened)
        {
            // bfloat16 partial sums travel as float32 so the result is rounded once, at the rank that finishes each chunk.
            var work = type == ElementType.Float32 ? (float*)data : widened;
            if (type == ElementType.BFloat16)
                BFloat16Math.Widen(new ReadOnlySpan<ushort>(data, elements), new Span<float>(work, elements));
            using var operation = new Operation(schedule, number, type, buffer.Length, (nint)data, (nint)work);
            Execute(operation);
        }
    }

    private void Execute(Operation operation)
    {
        lock (_failureLock)
        {
            if (_failure is not null) throw _failure.ToException(afterwards: true, Me);
            _running = operation;
        }
        using var deadline = new Timer(_ => Fail(FailureKind.Timeout, DescribeTimeout(operation), null, operation),
            null, _operationTimeout, Timeout.InfiniteTimeSpan);
        var sender = new Thread(() => SendAll(operation)) { IsBackground = true, Name = $"ring-send-r{Rank}" };
        sender.Start();
        try
        {
            ReceiveAll(operation);
        }
        catch (Exception e)
        {
            Fail(FailureKind.Error, $"{Me}: {operation.Describe()} failed while {operation.ReceiveActivity}: {e.Message}", e, operation);
        }
        // The sender reads the pinned buffer: it must have stopped before this frame unpins it.
        sender.Join();
        lock (_failureLock)
        {
            _running = null;
            if (_failure is not null) throw _failure.ToException(afterwards: false, Me);
            operation.Completed = true;
        }
    }

    private unsafe void SendAll(Operation operation)
    {
        try
        {
            var schedule = operation.Schedule;
            Span<byte> header = stackalloc byte[OperationHeaderBytes];
            operation.WriteHeader(header);
            operation.SendActivity = $"sending the operation header to rank {Next} at {_endpoints[Next]}";
            SendExactly(header);
            for (var step = 0; step < schedule.StepCount; step++)
            {
                var reduce = schedule.IsReduceStep(step);
                var source = (byte*)(reduce ? operation.Work : operation.Data);
                var elementSize = reduce ? sizeof(float) : operation.Type.ByteSize();
                var (start, count) = schedule.Chunk(schedule.SendChunk(step));
                for (long done = 0; done < count; done += SegmentElements)
                {
                    // Step s sends what step s-1 received: wait until the receiver has finished this segment.
                    if (step > 0) operation.SegmentsReady.Wait(operation.Stop.Token);
                    var length = (int)Math.Min(SegmentElements, count - done);
                    operation.SendActivity = $"sending step {step + 1}/{schedule.StepCount} to rank {Next} at {_endpoints[Next]}";
                    SendExactly(new ReadOnlySpan<byte>(source + (start + done) * elementSize, length * elementSize));
                }
            }
            operation.SendActivity = "done sending";
        }
        catch (Exception e)
        {
            Fail(FailureKind.Error, $"{Me}: {operation.Describe()} failed while {operation.SendActivity}: {e.Message}", e, operation);
        }
    }

    private unsafe void ReceiveAll(Operation operation)
    {
        var schedule = operation.Schedule;
        Span<byte> header = stackalloc byte[OperationHeaderBytes];
        operation.ReceiveActivity = $"waiting for the operation header from rank {Previous} at {_endpoints[Previous]}";
        ReceiveExactly(header);
        operation.CheckHeader(header, Previous, Me);
        var work = (float*)operation.Work;
        var data = (byte*)operation.Data;
        var elementSize = operation.Type.ByteSize();
        for (var step = 0; step < schedule.StepCount; step++)
        {
            var reduce = schedule.IsReduceStep(step);
            var (start, count) = schedule.Chunk(schedule.ReceiveChunk(step));
            operation.ReceiveActivity = $"receiving step {step + 1}/{schedule.StepCount} from rank {Previous} at {_endpoints[Previous]}";
            for (long done = 0; done < count; done += SegmentElements)
            {
                var length = (int)Math.Min(SegmentElements, count - done);
                var offset = start + done;
                if (reduce)
                {
                    var incoming = _segment.AsSpan(0, length * sizeof(float));
                    ReceiveExactly(incoming);
                    var target = new Span<float>(work + offset, length);
                    AddInto(target, MemoryMarshal.Cast<byte, float>(incoming));
                    if (step == schedule.LastReduceStep && operation.Type == ElementType.BFloat16)
                        BFloat16Math.Narrow(target, new Span<ushort>(data + offset * sizeof(ushort), length));
                }
                else
                {
                    ReceiveExactly(new Span<byte>(data + offset * elementSize, length * elementSize));
                }
                if (step < schedule.StepCount - 1) operation.SegmentsReady.Release();
            }
        }
        operation.ReceiveActivity = "done receiving";
    }

    /// <summary>target[i] += incoming[i]; each rank adds in the same ring order, so the sums agree bit for bit.</summary>
    private static void AddInto(Span<float> target, ReadOnlySpan<float> incoming)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var targetVectors = MemoryMarshal.Cast<float, Vector<float>>(target);
            var incomingVectors = MemoryMarshal.Cast<float, Vector<float>>(incoming);
            for (var v = 0; v < targetVectors.Length; v++) targetVectors[v] += incomingVectors[v];
            i = targetVectors.Length * Vector<float>.Count;
        }
        for (; i < target.Length; i++) target[i] += incoming[i];
    }

    private void SendExactly(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            var sent = _toNext.Send(data);
            data = data[sent..];
        }
    }

    private void ReceiveExactly(Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var read = _fromPrevious.Receive(buffer);
            if (read == 0) throw new IOException($"rank {Previous} closed the connection");
            buffer = buffer[read..];
        }
    }

    private string DescribeTimeout(Operation operation) =>
        $"{Me}: {operation.Describe()} did not finish within {_operationTimeout.TotalSeconds:0.###} s " +
        $"(receiver: {operation.ReceiveActivity}; sender: {operation.SendActivity})";

    /// <summary>
    /// Records the first failure and shuts both sockets down, which wakes this rank's blocked threads and ends the
    /// neighbours' connections. A timeout that fires after its operation completed is ignored.
    /// </summary>
    private void Fail(FailureKind kind, string message, Exception? inner, Operation? operation)
    {
        lock (_failureLock)
        {
            if (operation is { Completed: true } || _failure is not null) return;
            _failure = new Failure(kind, message, inner);
            // Under the lock: the operation cannot be disposed in between (Execute clears _running under it first).
            _running?.Stop.Cancel();
        }
        _log?.Invoke(message);
        foreach (var socket in new[] { _toNext, _fromPrevious })
        {
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Already closed by the peer or by an earlier failure.
            }
            socket.Dispose();
        }
    }

    private void ThrowIfUnusable()
    {
        lock (_failureLock)
        {
            if (_failure is not null) throw _failure.ToException(afterwards: true, Me);
        }
    }

    private enum FailureKind { Error, Timeout, Aborted }

    private sealed record Failure(FailureKind Kind, string Message, Exception? Inner)
    {
        public CollectiveException ToException(bool afterwards, string me)
        {
            var message = afterwards ? $"{me}: the collective group is unusable after an earlier failure: {Message}" : Message;
            return Kind switch
            {
                FailureKind.Timeout => new CollectiveTimeoutException(message, Inner),
                FailureKind.Aborted => new CollectiveAbortedException(message, Inner),
                _ => new CollectiveException(message, Inner),
            };
        }
    }

    /// <summary>One all-reduce in flight: the pinned buffers and what the two threads share.</summary>
    private sealed class Operation(RingSchedule schedule, long number, ElementType type, long bytes, nint data, nint work) : IDisposable
    {
        public RingSchedule Schedule { get; } = schedule;
        public ElementType Type { get; } = type;
        public nint Data { get; } = data;
        public nint Work { get; } = work;

        /// <summary>Released once per segment the receiver has finished (all steps but the last).</summary>
        public SemaphoreSlim SegmentsReady { get; } = new(0);
        public CancellationTokenSource Stop { get; } = new();
        public volatile string SendActivity = "starting";
        public volatile string ReceiveActivity = "starting";
        public bool Completed;

        public string Describe() => $"all-reduce #{number} ({Type.Describe()}, {bytes} bytes)";

        public void WriteHeader(Span<byte> header)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(header, OperationMagic);
            BinaryPrimitives.WriteInt32LittleEndian(header[4..], (int)Type);
            BinaryPrimitives.WriteInt64LittleEndian(header[8..], number);
            BinaryPrimitives.WriteInt64LittleEndian(header[16..], bytes);
        }

        /// <summary>Ranks that disagree on the call sequence or buffer fail here instead of summing unrelated bytes.</summary>
        public void CheckHeader(ReadOnlySpan<byte> header, int previous, string me)
        {
            var magic = BinaryPrimitives.ReadUInt32LittleEndian(header);
            var theirType = (ElementType)BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
            var theirNumber = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
            var theirBytes = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
            if (magic != OperationMagic)
                throw new InvalidDataException($"rank {previous} sent 0x{magic:X8} where an operation header belongs");
            if (theirNumber != number || theirType != Type || theirBytes != bytes)
                throw new InvalidDataException(
                    $"{me} is in all-reduce #{number} ({Type.Describe()}, {bytes} bytes) but rank {previous} is in " +
                    $"all-reduce #{theirNumber} ({theirType.Describe()}, {theirBytes} bytes): every rank must make the same calls with the same buffers");
        }

        public void Dispose()
        {
            SegmentsReady.Dispose();
            Stop.Dispose();
        }
    }
}
