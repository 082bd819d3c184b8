namespace Training.Shared.Storage;

/// <summary>Blobs as files under a root folder. Writes go to a temporary file first and are renamed into place,
/// so a crash never leaves a truncated blob under the final name.</summary>
public sealed class LocalFolderBlobStore : IBlobStore
{
    private readonly string _root;

    public LocalFolderBlobStore(string root)
    {
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(_root);
    }

    public string Location => _root;

    private string FullPath(string path)
    {
        if (string.IsNullOrWhiteSpace(path) || path.StartsWith('/') || path.Split('/').Any(p => p is "" or "." or ".."))
            throw new ArgumentException($"invalid blob path '{path}'", nameof(path));
        return Path.Combine(_root, path.Replace('/', Path.DirectorySeparatorChar));
    }

    public async Task PutAsync(string path, ReadOnlyMemory<byte> content, bool createOnly = false, CancellationToken cancel = default)
    {
        var target = FullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temporary = $"{target}.{Guid.NewGuid():N}.partial";
        await using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
        {
            await stream.WriteAsync(content, cancel);
            await stream.FlushAsync(cancel);
            stream.Flush(flushToDisk: true);
        }
        try
        {
            if (createOnly)
            {
                // Without overwrite, .NET moves on Unix by link()+unlink(): link fails if the target exists, so this is atomic.
                try
                {
                    File.Move(temporary, target, overwrite: false);
                }
                catch (IOException) when (File.Exists(target))
                {
                    throw new BlobAlreadyExistsException(path);
                }
            }
            else
            {
                File.Move(temporary, target, overwrite: true);
            }
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    public async Task<byte[]?> GetAsync(string path, CancellationToken cancel = default)
    {
        var full = FullPath(path);
        return File.Exists(full) ? await File.ReadAllBytesAsync(full, cancel) : null;
    }

    public Task<BlobProperties?> GetPropertiesAsync(string path, CancellationToken cancel = default)
    {
        var info = new FileInfo(FullPath(path));
        // A replaced file gets a new write time (writes rename a new file into place), so size + time tag a version.
        return Task.FromResult(info.Exists
            ? new BlobProperties(info.Length, $"{info.Length:x}-{info.LastWriteTimeUtc.Ticks:x}")
            : null);
    }

    public async Task<byte[]> GetRangeAsync(string path, long offset, int length, CancellationToken cancel = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var full = FullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"blob '{path}' does not exist in {_root}", path);
        await using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        var available = (int)Math.Clamp(stream.Length - offset, 0, length);
        var buffer = new byte[available];
        stream.Position = Math.Min(offset, stream.Length);
        await stream.ReadExactlyAsync(buffer, cancel);
        return buffer;
    }

    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancel = default)
    {
        if (!Directory.Exists(_root)) return Task.FromResult<IReadOnlyList<string>>([]);
        var list = Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith(".partial", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(_root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(p => p.StartsWith(prefix, StringComparison.Ordinal))
            .OrderBy(p => p, StringComparer.Ordinal)
            .ToList();
        return Task.FromResult<IReadOnlyList<string>>(list);
    }

    public Task DeleteAsync(string path, CancellationToken cancel = default)
    {
        var full = FullPath(path);
        if (File.Exists(full)) File.Delete(full);
        return Task.CompletedTask;
    }
}
