using System.Runtime.ExceptionServices;
using Training.Shared.Storage;

namespace Training.Shared.Training;

/// <summary>
/// Uploads checkpoints in the background so training blocks only while tensors are copied to host memory, and never
/// on storage: while storage is down an upload keeps retrying (<see cref="StorageRetryOptions.CheckpointCommit"/>) and
/// training goes on. At most one upload is in flight and at most one snapshot waits behind it; a checkpoint that comes
/// due while one is already waiting supersedes it (the older one is dropped, with a logged reason), so host memory
/// stays bounded at two snapshots and commits stay in step order. <see cref="Flush"/> (the end of training) waits for
/// everything submitted.
/// </summary>
/// <param name="log">Receives why a checkpoint waits or is dropped; called on the trainer thread.</param>
public sealed class CheckpointWriter(CheckpointStore store, int keep, Action<CheckpointManifest> committed, Action<string>? log = null)
{
    private readonly object _gate = new();
    private Task _uploading = Task.CompletedTask;
    private (long Step, Func<IReadOnlyDictionary<string, byte[]>> Files)? _waiting;
    private long? _inFlight;
    private Exception? _failure;

    /// <summary>Steps whose snapshot was dropped for a newer one before its upload started.</summary>
    public IReadOnlyList<long> Superseded => _superseded;
    private readonly List<long> _superseded = [];

    /// <summary>Hands a snapshot to the uploader and returns at once; throws if an earlier upload failed for good.</summary>
    public void Submit(long step, IReadOnlyDictionary<string, byte[]> files) => Submit(step, () => files);

    /// <summary>Like <see cref="Submit(long, IReadOnlyDictionary{string, byte[]})"/>, with the files made on the upload
    /// thread: serialization of host copies need not block training. <paramref name="files"/> must not touch TorchSharp.</summary>
    public void Submit(long step, Func<IReadOnlyDictionary<string, byte[]>> files)
    {
        lock (_gate)
        {
            ThrowIfFailed();
            if (_waiting is { } older)
            {
                _superseded.Add(older.Step);
                log?.Invoke($"checkpoint step {older.Step} superseded by step {step} before its upload started: the upload of " +
                            $"step {_inFlight} is still in flight (storage slow, or down and retrying)");
            }
            else if (_inFlight is { } busy)
            {
                log?.Invoke($"checkpoint step {step} waits behind the upload of step {busy}, still in flight; training goes on");
            }
            _waiting = (step, files);
            if (_inFlight is null) _uploading = Task.Run(DrainAsync);
            _inFlight ??= step;
        }
    }

    // Uploads the waiting snapshot, then the one that came due meanwhile, until none waits.
    private async Task DrainAsync()
    {
        while (true)
        {
            (long Step, Func<IReadOnlyDictionary<string, byte[]>> Files) next;
            lock (_gate)
            {
                if (_waiting is null)
                {
                    _inFlight = null;
                    return;
                }
                next = _waiting.Value;
                _waiting = null;
                _inFlight = next.Step;
            }
            var step = next.Step;
            try
            {
                var files = next.Files();
                // Drop the host copies now that they are serialized: one checkpoint in flight, not two.
                next = default;
                var manifest = await store.CommitAsync(step, files);
                committed(manifest);
            }
            catch (Exception e)
            {
                lock (_gate)
                {
                    _failure ??= e;
                    _waiting = null;
                    _inFlight = null;
                }
                return;
            }
            try
            {
                await store.PruneAsync(keep);
            }
            catch (Exception e) when (e is IOException)
            {
                // Retention is tidying, not safety: the next commit prunes again.
                log?.Invoke($"checkpoint retention after step {step} skipped: {e.Message}");
            }
        }
    }

    /// <summary>Waits until every submitted snapshot is committed (or dropped for a newer one); rethrows a failure so a
    /// lost checkpoint is never silent.</summary>
    public void Flush()
    {
        while (true)
        {
            Task uploading;
            lock (_gate)
            {
                if (_inFlight is null) break;
                uploading = _uploading;
            }
            uploading.GetAwaiter().GetResult();
        }
        lock (_gate) ThrowIfFailed();
    }

    private void ThrowIfFailed()
    {
        if (_failure is not { } failure) return;
        _failure = null;
        ExceptionDispatchInfo.Capture(failure).Throw();
    }
}
