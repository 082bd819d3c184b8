using System.Security.Cryptography;
using System.Text.Json;
using Polly;

namespace Training.Shared.Storage;

public sealed record CheckpointFile(string Name, long Size, string Sha256);

/// <summary>Written last, create-only: a checkpoint exists exactly when its manifest does.</summary>
public sealed record CheckpointManifest(string Id, long Step, DateTimeOffset CreatedAt, IReadOnlyList<CheckpointFile> Files);

/// <param name="Skipped">Newer checkpoints that failed verification, with the reason, newest first.</param>
/// <param name="SkippedManifests">The manifests of those checkpoints, in the same order.</param>
public sealed record LoadedCheckpoint(CheckpointManifest Manifest, IReadOnlyDictionary<string, byte[]> Files, IReadOnlyList<string> Skipped,
    IReadOnlyList<CheckpointManifest>? SkippedManifests = null);

/// <summary>
/// Commits checkpoints as folders of blobs under a prefix: every file first, then a manifest with sizes and
/// SHA-256 (create-only), then the <c>latest</c> pointer. Loading verifies hashes and falls back to older ones.
/// </summary>
public sealed class CheckpointStore
{
    public const string ManifestName = "manifest.json";
    public const string LatestName = "latest";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private readonly IBlobStore _store;
    private readonly string _prefix;
    private readonly ResiliencePipeline _retry;

    /// <param name="prefix">Folder of this trial's checkpoints, e.g. <c>trials/quickstart-t000/checkpoints</c>.</param>
    /// <param name="retry">How failed writes are retried (<see cref="StorageRetry"/>); when null,
    /// <see cref="StorageRetryOptions.CheckpointCommit"/>, which rides out outages of minutes.</param>
    public CheckpointStore(IBlobStore store, string prefix, StorageRetryOptions? retry = null)
    {
        _store = store;
        _prefix = prefix.TrimEnd('/');
        // Blob stores fail transiently (throttling, dropped connections, an outage); a create-only conflict is final.
        _retry = StorageRetry.Build(retry ?? StorageRetryOptions.CheckpointCommit);
    }

    public string Location => $"{_store.Location}/{_prefix}";

    public static string IdFor(long step) => $"step-{step:D8}";

    /// <summary>A blob kept beside the checkpoints under this store's prefix (the trial's spec.yaml), or null.</summary>
    public Task<byte[]?> ReadBesideAsync(string name, CancellationToken cancel = default) => _store.GetAsync($"{_prefix}/{name}", cancel);

    public async Task<CheckpointManifest> CommitAsync(long step, IReadOnlyDictionary<string, byte[]> files, CancellationToken cancel = default)
    {
        var id = IdFor(step);
        // A committed checkpoint is immutable: refuse before its files are overwritten, not only at its manifest.
        var manifestPath = $"{_prefix}/{id}/{ManifestName}";
        if (await _retry.ExecuteAsync(async ct => await _store.GetPropertiesAsync(manifestPath, ct), cancel) is not null)
            throw new BlobAlreadyExistsException(manifestPath);
        var entries = new List<CheckpointFile>();
        foreach (var (name, bytes) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            if (name == ManifestName || name.Contains('/')) throw new ArgumentException($"invalid checkpoint file name '{name}'");
            await _retry.ExecuteAsync(async ct => await _store.PutAsync($"{_prefix}/{id}/{name}", bytes, cancel: ct), cancel);
            entries.Add(new CheckpointFile(name, bytes.Length, Convert.ToHexStringLower(SHA256.HashData(bytes))));
        }
        var manifest = new CheckpointManifest(id, step, DateTimeOffset.UtcNow, entries);
        var manifestBytes = JsonSerializer.SerializeToUtf8Bytes(manifest, Json);
        var manifestAttempts = 0;
        await _retry.ExecuteAsync(async ct =>
        {
            try
            {
                manifestAttempts++;
                await _store.PutAsync(manifestPath, manifestBytes, createOnly: true, ct);
            }
            catch (BlobAlreadyExistsException) when (manifestAttempts > 1)
            {
                // An earlier attempt may have written it with its answer lost in the outage: then it is this commit.
                if (await _store.GetAsync(manifestPath, ct) is not { } existing || !existing.AsSpan().SequenceEqual(manifestBytes)) throw;
            }
        }, cancel);
        await _retry.ExecuteAsync(async ct => await _store.PutAsync($"{_prefix}/{LatestName}", System.Text.Encoding.UTF8.GetBytes(id), cancel: ct), cancel);
        return manifest;
    }

    /// <summary>Committed checkpoints (those with a manifest), oldest first.</summary>
    public async Task<IReadOnlyList<CheckpointManifest>> ListAsync(CancellationToken cancel = default)
    {
        var result = new List<CheckpointManifest>();
        foreach (var path in await _store.ListAsync($"{_prefix}/", cancel))
        {
            if (!path.EndsWith($"/{ManifestName}", StringComparison.Ordinal)) continue;
            var manifest = await ReadManifestAsync(path, cancel);
            if (manifest is not null) result.Add(manifest);
        }
        return result.OrderBy(m => m.Step).ToList();
    }

    private async Task<CheckpointManifest?> ReadManifestAsync(string path, CancellationToken cancel)
    {
        var bytes = await _store.GetAsync(path, cancel);
        if (bytes is null) return null;
        try
        {
            return JsonSerializer.Deserialize<CheckpointManifest>(bytes, Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The newest checkpoint whose files all match their manifest; null when none was committed.</summary>
    /// <remarks>A manifest newer than the <c>latest</c> pointer (a crash between the two writes) is complete, so it is
    /// used; the pointer serves tools that read one blob instead of listing.</remarks>
    public async Task<LoadedCheckpoint?> LoadLatestAsync(CancellationToken cancel = default)
    {
        var manifests = (await ListAsync(cancel)).Reverse().ToList();
        var skipped = new List<string>();
        var skippedManifests = new List<CheckpointManifest>();
        foreach (var manifest in manifests)
        {
            var (files, problem) = await VerifyAsync(manifest, cancel);
            if (problem is null) return new LoadedCheckpoint(manifest, files, skipped, skippedManifests);
            skipped.Add($"{manifest.Id}: {problem}");
            skippedManifests.Add(manifest);
        }
        if (skipped.Count > 0)
            throw new InvalidDataException($"no checkpoint under {Location} passes verification: {string.Join("; ", skipped)}. " +
                "Nothing was loaded. To continue, restore a good copy of one of them, or start the trial over from step 0: " +
                $"delete these checkpoint folders ({string.Join(", ", manifests.Select(m => m.Id))}) under {Location} and resume " +
                "the run, or submit the experiment again as a new run");
        return null;
    }

    /// <summary>The checkpoint committed at <paramref name="step"/>, verified; throws naming what is wrong when it is
    /// missing or fails verification (a named checkpoint has no fallback).</summary>
    public async Task<LoadedCheckpoint> LoadStepAsync(long step, CancellationToken cancel = default)
    {
        var manifests = await ListAsync(cancel);
        var manifest = manifests.FirstOrDefault(m => m.Step == step)
            ?? throw new InvalidDataException($"no checkpoint at step {step} under {Location}; committed steps: " +
                                              (manifests.Count == 0 ? "none" : string.Join(", ", manifests.Select(m => m.Step))));
        var (files, problem) = await VerifyAsync(manifest, cancel);
        return problem is null ? new LoadedCheckpoint(manifest, files, [])
            : throw new InvalidDataException($"checkpoint {Location}/{manifest.Id} fails verification: {problem}");
    }

    /// <summary>Every file of the manifest, each checked against its size and SHA-256; the first problem, if any.</summary>
    private async Task<(Dictionary<string, byte[]> Files, string? Problem)> VerifyAsync(CheckpointManifest manifest, CancellationToken cancel)
    {
        var files = new Dictionary<string, byte[]>();
        foreach (var file in manifest.Files)
        {
            var bytes = await _store.GetAsync($"{_prefix}/{manifest.Id}/{file.Name}", cancel);
            if (bytes is null) return (files, $"{file.Name} is missing");
            if (bytes.Length != file.Size) return (files, $"{file.Name} has {bytes.Length} bytes, manifest says {file.Size}");
            if (Convert.ToHexStringLower(SHA256.HashData(bytes)) != file.Sha256) return (files, $"{file.Name} fails its SHA-256 check");
            files[file.Name] = bytes;
        }
        return (files, null);
    }

    /// <summary>Uncommits a checkpoint that failed verification: its manifest is deleted (so it no longer exists for
    /// loading, and its step can be committed again by the training that resumes before it); its files are left for
    /// inspection until that step is committed again or retention deletes them.</summary>
    public async Task SetAsideAsync(CheckpointManifest manifest, CancellationToken cancel = default) =>
        await _retry.ExecuteAsync(async ct => await _store.DeleteAsync($"{_prefix}/{manifest.Id}/{ManifestName}", ct), cancel);

    /// <summary>Deletes all but the newest <paramref name="keep"/> committed checkpoints (manifest first, so a
    /// half-deleted checkpoint is never taken for a complete one). The newest committed checkpoint, and the one the
    /// <c>latest</c> pointer names, are always kept, whatever <paramref name="keep"/> says.</summary>
    public async Task PruneAsync(int keep, CancellationToken cancel = default)
    {
        var manifests = await ListAsync(cancel);
        var pointed = await _store.GetAsync($"{_prefix}/{LatestName}", cancel) is { } latest ? System.Text.Encoding.UTF8.GetString(latest).Trim() : null;
        foreach (var old in manifests.Take(Math.Max(0, manifests.Count - Math.Max(1, keep))))
        {
            if (old.Id == pointed) continue;
            await _store.DeleteAsync($"{_prefix}/{old.Id}/{ManifestName}", cancel);
            foreach (var file in old.Files) await _store.DeleteAsync($"{_prefix}/{old.Id}/{file.Name}", cancel);
        }
    }
}
