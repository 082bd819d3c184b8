using System.Diagnostics;
using TorchSharp;

namespace Training.Shared.Collectives;

/// <summary>
/// The CUDA collective backend: one NCCL communicator per rank, created non-blocking so that every wait is a poll
/// with a deadline (ncclCommGetAsyncError and cudaStreamQuery) instead of a call that can hang for NCCL's default
/// 30 minutes. A timeout, an asynchronous NCCL error or <see cref="Abort"/> calls ncclCommAbort, which stops the
/// kernels in flight; the group is unusable afterwards. The unique id comes from <see cref="CreateUniqueId"/> on one
/// rank and reaches the others through the coordinator.
/// </summary>
public sealed unsafe class NcclGroup : ICollectiveGroup
{
    private readonly NcclRuntime _nccl;
    private readonly int _device;
    private readonly TimeSpan _timeout;
    // Every NCCL/CUDA call on the communicator or stream is made under this lock, and waits poll outside it, so
    // Abort from another thread gets in between two polls and never races a call on a freed communicator.
    private readonly object _gate = new();
    private nint _comm;
    private nint _stream;
    private nint _scratch;
    private long _scratchBytes;
    private Failure? _failure;
    private long _operations;
    private int _busy;

    private NcclGroup(NcclRuntime nccl, int rank, int worldSize, int device, TimeSpan timeout)
    {
        _nccl = nccl;
        Rank = rank;
        WorldSize = worldSize;
        _device = device;
        _timeout = timeout;
    }

    public int Rank { get; }
    public int WorldSize { get; }

    /// <summary>The CUDA device this rank's communicator and stream live on.</summary>
    public int CudaDevice => _device;

    private string Me => $"rank {Rank}/{WorldSize} (cuda:{_device})";

    /// <summary>ncclGetUniqueId: the 128 bytes every rank of one group passes to <see cref="Create"/>.</summary>
    public static byte[] CreateUniqueId(NcclRuntime? runtime = null)
    {
        var nccl = runtime ?? NcclRuntime.Default;
        NcclUniqueId id;
        var result = nccl.GetUniqueId(&id);
        if (result != NcclRuntime.NcclSuccess)
            throw new CollectiveException($"ncclGetUniqueId failed with {nccl.ResultName(result)}{nccl.LastError(0)}");
        return new ReadOnlySpan<byte>(id.Internal, NcclUniqueId.Bytes).ToArray();
    }

    /// <summary>
    /// ncclCommInitRankConfig (non-blocking) on <paramref name="cudaDevice"/>, waiting at most <paramref name="timeout"/>
    /// for all <paramref name="worldSize"/> ranks to join; the same timeout bounds every later all-reduce.
    /// </summary>
    /// <exception cref="CollectiveUnavailableException">NCCL or CUDA is missing, or the device does not exist.</exception>
    /// <exception cref="CollectiveTimeoutException">Not every rank joined in time.</exception>
    public static NcclGroup Create(int rank, int worldSize, byte[] uniqueId, int cudaDevice, TimeSpan timeout, NcclRuntime? runtime = null)
    {
        ArgumentNullException.ThrowIfNull(uniqueId);
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, "world size must be at least 1");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in 0..{worldSize - 1}");
        if (uniqueId.Length != NcclUniqueId.Bytes)
            throw new ArgumentException($"an NCCL unique id is {NcclUniqueId.Bytes} bytes (from NcclGroup.CreateUniqueId), not {uniqueId.Length}", nameof(uniqueId));
        if (cudaDevice < 0) throw new ArgumentOutOfRangeException(nameof(cudaDevice), cudaDevice, "CUDA device numbers start at 0");
        if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "the timeout must be positive");

        var nccl = runtime ?? NcclRuntime.Default;
        var group = new NcclGroup(nccl, rank, worldSize, cudaDevice, timeout);
        try
        {
            group.Initialize(uniqueId);
            return group;
        }
        catch
        {
            group.Dispose();
            throw;
        }
    }

    private void Initialize(byte[] uniqueId)
    {
        lock (_gate)
        {
            int devices;
            var error = _nccl.CudaGetDeviceCount(&devices);
            if (error != NcclRuntime.CudaSuccess)
                throw new CollectiveUnavailableException($"{Me}: no usable CUDA device: cudaGetDeviceCount failed with {_nccl.CudaErrorName(error)}. " +
                                                         "Check the NVIDIA driver, or run the worker with --device cpu to use the TCP ring");
            if (_device >= devices)
                throw new CollectiveUnavailableException($"{Me}: cuda:{_device} was asked for, but this machine has {devices} CUDA device(s)");
            CheckCuda(_nccl.CudaSetDevice(_device), "cudaSetDevice");
            nint stream;
            // A blocking stream (not cudaStreamNonBlocking): it waits for work queued earlier on the legacy default
            // stream, which is where TorchSharp computes the gradients, so no explicit synchronisation is needed.
            CheckCuda(_nccl.CudaStreamCreate(&stream), "cudaStreamCreate");
            _stream = stream;

            NcclUniqueId id;
            uniqueId.CopyTo(new Span<byte>(id.Internal, NcclUniqueId.Bytes));
            var config = NcclConfig.NonBlocking();
            nint comm;
            var result = _nccl.CommInitRankConfig(&comm, WorldSize, id, Rank, &config);
            _comm = comm;
            if (result != NcclRuntime.NcclSuccess && result != NcclRuntime.NcclInProgress)
                throw FailLocked(FailureKind.Error, $"{Me}: ncclCommInitRankConfig failed with {_nccl.ResultName(result)}{_nccl.LastError(comm)}");
        }
        WaitUntilDone($"communicator init ({WorldSize} ranks)", includeStream: false,
            hint: $"did every one of the {WorldSize} ranks call NcclGroup.Create with the same unique id?");
    }

    public void AllReduceSum(Span<byte> buffer, ElementType type)
    {
        var size = type.ByteSize();
        if (buffer.Length % size != 0)
            throw new ArgumentException($"{Me}: all-reduce buffer of {buffer.Length} bytes is not a whole number of {type.Describe()} elements", nameof(buffer));
        using var turn = TakeTurn();
        if (buffer.IsEmpty) return;
        var what = $"all-reduce #{++_operations} ({type.Describe()}, {buffer.Length} bytes from host memory)";
        var bytes = (nuint)buffer.Length;
        fixed (byte* host = buffer)
        {
            lock (_gate)
            {
                ThrowIfFailedLocked(afterwards: false);
                CheckCuda(_nccl.CudaSetDevice(_device), "cudaSetDevice");
                EnsureScratchLocked(buffer.Length);
                CheckCudaFatal(_nccl.CudaMemcpyAsync(_scratch, (nint)host, bytes, NcclRuntime.CudaMemcpyHostToDevice, _stream), "cudaMemcpyAsync to the device", what);
                EnqueueAllReduceLocked(_scratch, buffer.Length / size, type, what);
            }
            WaitUntilDone(what, includeStream: true, hint: "is every rank making the same all-reduce calls?");
            // Copied back only after the reduction finished: a copy to pageable memory blocks, and must not block past the deadline.
            lock (_gate)
            {
                ThrowIfFailedLocked(afterwards: false);
                CheckCudaFatal(_nccl.CudaMemcpyAsync((nint)host, _scratch, bytes, NcclRuntime.CudaMemcpyDeviceToHost, _stream), "cudaMemcpyAsync to the host", what);
            }
            WaitUntilDone(what, includeStream: true, hint: "copying the result back to host memory");
        }
    }

    /// <summary>Sums <paramref name="elements"/> elements at a device address of this rank's CUDA device, in place.</summary>
    public void AllReduceSum(IntPtr devicePointer, long elements, ElementType type)
    {
        if (elements < 0) throw new ArgumentOutOfRangeException(nameof(elements), elements, "element count must not be negative");
        if (elements > 0 && devicePointer == IntPtr.Zero) throw new ArgumentException("device pointer is null", nameof(devicePointer));
        using var turn = TakeTurn();
        if (elements == 0) return;
        var what = $"all-reduce #{++_operations} ({type.Describe()}, {elements} elements on the device)";
        lock (_gate)
        {
            ThrowIfFailedLocked(afterwards: false);
            CheckCuda(_nccl.CudaSetDevice(_device), "cudaSetDevice");
            EnqueueAllReduceLocked(devicePointer, elements, type, what);
        }
        WaitUntilDone(what, includeStream: true, hint: "is every rank making the same all-reduce calls?");
    }

    public void AllReduceSum(torch.Tensor tensor)
    {
        var type = TensorBuffers.ElementTypeOf(tensor);
        if (tensor.device_type != DeviceType.CUDA)
        {
            TensorBuffers.AllReduceOnHost(this, tensor);
            return;
        }
        if (!tensor.is_contiguous()) throw new ArgumentException("all-reduce needs a contiguous tensor (call .contiguous() first)", nameof(tensor));
        if (tensor.device_index != _device)
            throw new ArgumentException($"{Me}: the tensor is on cuda:{tensor.device_index}, but this rank's communicator is on cuda:{_device}", nameof(tensor));
        AllReduceSum(TensorBuffers.DataPointer(tensor), tensor.numel(), type);
    }

    public void Abort(string reason)
    {
        lock (_gate) FailLocked(FailureKind.Aborted, $"{Me}: the collective group was aborted: {reason}");
    }

    /// <summary>Frees the communicator with ncclCommAbort, which never waits for peers (ncclCommDestroy may), then the stream and scratch memory.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            FailLocked(FailureKind.Aborted, $"{Me}: the collective group was disposed");
            if (_scratch != 0 || _stream != 0) _nccl.CudaSetDevice(_device);
            if (_scratch != 0) _nccl.CudaFree(_scratch);
            if (_stream != 0) _nccl.CudaStreamDestroy(_stream);
            _scratch = 0;
            _scratchBytes = 0;
            _stream = 0;
        }
    }

    private void EnqueueAllReduceLocked(nint data, long elements, ElementType type, string what)
    {
        var dataType = type == ElementType.Float32 ? NcclRuntime.NcclFloat32 : NcclRuntime.NcclBfloat16;
        // In place (send buffer == receive buffer). A non-blocking communicator may answer ncclInProgress: the wait
        // below polls ncclCommGetAsyncError until the call has been enqueued, then the stream until it has run.
        var result = _nccl.AllReduce(data, data, (nuint)elements, dataType, NcclRuntime.NcclSum, _comm, _stream);
        if (result != NcclRuntime.NcclSuccess && result != NcclRuntime.NcclInProgress)
            throw FailLocked(FailureKind.Error, $"{Me}: {what}: ncclAllReduce failed with {_nccl.ResultName(result)}{_nccl.LastError(_comm)}");
    }

    private void EnsureScratchLocked(long bytes)
    {
        if (_scratchBytes >= bytes) return;
        if (_scratch != 0) CheckCudaFatal(_nccl.CudaFree(_scratch), "cudaFree", "growing the host staging buffer");
        _scratch = 0;
        _scratchBytes = 0;
        nint pointer;
        CheckCuda(_nccl.CudaMalloc(&pointer, (nuint)bytes), $"cudaMalloc of {bytes} bytes");
        _scratch = pointer;
        _scratchBytes = bytes;
    }

    /// <summary>Polls until the communicator has no call in progress (and, with <paramref name="includeStream"/>, the stream is idle).</summary>
    private void WaitUntilDone(string what, bool includeStream, string hint)
    {
        var clock = Stopwatch.StartNew();
        var spinner = new SpinWait();
        while (true)
        {
            lock (_gate)
            {
                ThrowIfFailedLocked(afterwards: false);
                int state;
                var result = _nccl.CommGetAsyncError(_comm, &state);
                if (result != NcclRuntime.NcclSuccess)
                    throw FailLocked(FailureKind.Error, $"{Me}: {what}: ncclCommGetAsyncError failed with {_nccl.ResultName(result)}");
                if (state != NcclRuntime.NcclSuccess && state != NcclRuntime.NcclInProgress)
                    throw FailLocked(FailureKind.Error, $"{Me}: {what} failed: {_nccl.ResultName(state)}{_nccl.LastError(_comm)}");
                if (state == NcclRuntime.NcclSuccess)
                {
                    if (!includeStream) return;
                    var query = _nccl.CudaStreamQuery(_stream);
                    if (query == NcclRuntime.CudaSuccess) return;
                    if (query != NcclRuntime.CudaErrorNotReady)
                        throw FailLocked(FailureKind.Error, $"{Me}: {what}: the stream failed with {_nccl.CudaErrorName(query)}");
                }
            }
            if (clock.Elapsed > _timeout)
            {
                lock (_gate)
                {
                    ThrowIfFailedLocked(afterwards: false);
                    throw FailLocked(FailureKind.Timeout, $"{Me}: {what} did not finish within {_timeout.TotalSeconds:0.###} s ({hint}); the communicator was aborted");
                }
            }
            // Collectives on a GPU finish in micro- to milliseconds: spin first, then give the core back.
            if (clock.ElapsedMilliseconds < 2) spinner.SpinOnce(sleep1Threshold: -1);
            else Thread.Sleep(1);
        }
    }

    private void CheckCuda(int error, string call)
    {
        if (error != NcclRuntime.CudaSuccess)
            throw new CollectiveException($"{Me}: {call} failed with {_nccl.CudaErrorName(error)}");
    }

    /// <summary>A CUDA error in the middle of a collective leaves the peers waiting: abort so they fail too.</summary>
    private void CheckCudaFatal(int error, string call, string what)
    {
        if (error != NcclRuntime.CudaSuccess)
            throw FailLocked(FailureKind.Error, $"{Me}: {what}: {call} failed with {_nccl.CudaErrorName(error)}");
    }

    /// <summary>Records the first failure and aborts the communicator (caller holds the gate); returns the exception to throw.</summary>
    private CollectiveException FailLocked(FailureKind kind, string message)
    {
        if (_failure is null)
        {
            _failure = new Failure(kind, message);
            if (_comm != 0) _nccl.CommAbort(_comm);
            _comm = 0;
            return _failure.ToException(afterwards: false, Me);
        }
        return _failure.ToException(afterwards: true, Me);
    }

    private void ThrowIfFailedLocked(bool afterwards)
    {
        if (_failure is not null) throw _failure.ToException(afterwards, Me);
    }

    private Turn TakeTurn()
    {
        if (Interlocked.Exchange(ref _busy, 1) == 1)
            throw new InvalidOperationException($"{Me}: another collective is running on this group; collectives on one group run one at a time");
        try
        {
            lock (_gate) ThrowIfFailedLocked(afterwards: true);
        }
        catch
        {
            Volatile.Write(ref _busy, 0);
            throw;
        }
        return new Turn(this);
    }

    private readonly struct Turn(NcclGroup group) : IDisposable
    {
        public void Dispose() => Volatile.Write(ref group._busy, 0);
    }

    private enum FailureKind { Error, Timeout, Aborted }

    private sealed record Failure(FailureKind Kind, string Message)
    {
        public CollectiveException ToException(bool afterwards, string me)
        {
            var message = afterwards ? $"{me}: the collective group is unusable after an earlier failure: {Message}" : Message;
            return Kind switch
            {
                FailureKind.Timeout => new CollectiveTimeoutException(message),
                FailureKind.Aborted => new CollectiveAbortedException(message),
                _ => new CollectiveException(message),
            };
        }
    }
}
