namespace Training.Shared.Storage;

/// <summary>Thrown when a create-only write finds the blob already there.</summary>
public sealed class BlobAlreadyExistsException(string path) : IOException($"blob '{path}' already exists")
{
    public string Path { get; } = path;
}

/// <summary>A blob's size in bytes and its version tag (changes whenever the content is replaced).</summary>
public sealed record BlobProperties(long Size, string ETag);

/// <summary>
/// Where checkpoints live: a flat namespace of '/'-separated blob paths. The local folder is the default;
/// Azure Blob Storage implements the same contract.
/// </summary>
public interface IBlobStore
{
    /// <summary>A human-readable location, e.g. a folder path or container URL.</summary>
    string Location { get; }

    /// <summary>Writes a blob. With <paramref name="createOnly"/> it fails with <see cref="BlobAlreadyExistsException"/>
    /// instead of replacing an existing blob; a reader never sees a partly written blob.</summary>
    Task PutAsync(string path, ReadOnlyMemory<byte> content, bool createOnly = false, CancellationToken cancel = default);

    /// <summary>The blob's bytes, or null when it does not exist.</summary>
    Task<byte[]?> GetAsync(string path, CancellationToken cancel = default);

    /// <summary>Size and version of the blob, or null when it does not exist.</summary>
    Task<BlobProperties?> GetPropertiesAsync(string path, CancellationToken cancel = default);

    /// <summary>Bytes [offset, offset + length) of the blob (fewer at its end); throws <see cref="FileNotFoundException"/>
    /// when it does not exist. Shards are read this way: footers and row groups by range, never the whole file.</summary>
    Task<byte[]> GetRangeAsync(string path, long offset, int length, CancellationToken cancel = default);

    /// <summary>Paths of every blob under <paramref name="prefix"/>, sorted ordinally.</summary>
    Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancel = default);

    Task DeleteAsync(string path, CancellationToken cancel = default);
}
