using Training.Shared.Storage;

namespace Training.Shared.Training;

/// <summary>
/// Uploads checkpoints in the background so training blocks only while tensors are copied to host memory.
/// At most one upload is in flight: a new one waits for the previous, which keeps host memory bounded and
/// commits in step order.
/// </summary>
public sealed class CheckpointWriter(CheckpointStore store, int keep, Action<CheckpointManifest> committed)
{
    private Task _pending = Task.CompletedTask;

    public void Submit(long step, IReadOnlyDictionary<string, byte[]> files)
    {
        Flush();
        _pending = Task.Run(async () =>
        {
            var manifest = await store.CommitAsync(step, files);
            await store.PruneAsync(keep);
            committed(manifest);
        });
    }

    /// <summary>Waits for the upload in flight; rethrows its failure so a lost checkpoint is never silent.</summary>
    public void Flush()
    {
        try
        {
            _pending.GetAwaiter().GetResult();
        }
        finally
        {
            _pending = Task.CompletedTask;
        }
    }
}
