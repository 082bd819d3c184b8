using Azure;
using Azure.Core;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Polly;

namespace Training.Shared.Storage;

/// <summary>A storage call that failed for good: not found or refused (final), or still failing after every retry.
/// The message names the store's location and the blob, never a credential.</summary>
public sealed class BlobStoreException(string message, int status, bool transient) : IOException(message)
{
    /// <summary>The HTTP status of the last attempt; 0 when no response came (connection refused, timeout).</summary>
    public int Status { get; } = status;

    /// <summary>True when the failure was transient and retries ran out (storage down or throttling).</summary>
    public bool Transient { get; } = transient;
}

/// <summary>How an <see cref="AzureBlobStore"/> moves bytes and retries.</summary>
public sealed class AzureBlobStoreOptions
{
    public static readonly AzureBlobStoreOptions Default = new();

    /// <summary>Parallel block uploads/downloads of one blob: the memory in flight is about
    /// <see cref="MaximumConcurrency"/> x <see cref="BlockSize"/>.</summary>
    public int MaximumConcurrency { get; init; } = 4;

    /// <summary>Size of each staged block of a large blob.</summary>
    public int BlockSize { get; init; } = 4 << 20;

    /// <summary>Blobs up to this size go up in one request; larger ones in blocks of <see cref="BlockSize"/>.</summary>
    public int SingleUploadLimit { get; init; } = 8 << 20;

    /// <summary>Timeout of one HTTP request (one block); the whole operation is bounded by the retry policy's attempt timeout.</summary>
    public TimeSpan NetworkTimeout { get; init; } = TimeSpan.FromSeconds(100);

    public StorageRetryOptions Retry { get; init; } = StorageRetryOptions.Default;

    /// <summary>Client options with the SDK's own retries off: <see cref="StorageRetry"/> is the one retry policy.</summary>
    public BlobClientOptions ClientOptions()
    {
        var client = new BlobClientOptions();
        client.Retry.MaxRetries = 0;
        client.Retry.NetworkTimeout = NetworkTimeout;
        client.Diagnostics.IsLoggingContentEnabled = false;
        client.Diagnostics.IsTelemetryEnabled = false;
        return client;
    }
}

/// <summary>
/// Blobs in an Azure Blob Storage container under a prefix. Create-only writes are conditional (If-None-Match: *);
/// large blobs go up as parallel blocks within a bounded memory budget; every call is retried on transient failures
/// by <see cref="StorageRetry"/> (the SDK's own retries are off). Errors never carry credentials.
/// </summary>
public sealed class AzureBlobStore : IBlobStore
{
    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly AzureBlobStoreOptions _options;
    private readonly ResiliencePipeline _retry;
    private readonly IReadOnlyList<string> _secrets;

    /// <param name="container">Built with <see cref="AzureBlobStoreOptions.ClientOptions"/> (no SDK retries).</param>
    /// <param name="location">What <see cref="Location"/> shows, e.g. <c>azure://account/container/prefix</c>;
    /// defaults to the container URL without its query (a SAS never shows).</param>
    /// <param name="secrets">Values that must never appear in an error message (keys, SAS tokens): removed if they do.</param>
    public AzureBlobStore(BlobContainerClient container, string prefix = "", AzureBlobStoreOptions? options = null,
        string? location = null, IEnumerable<string>? secrets = null)
    {
        _container = container;
        _prefix = prefix.Trim('/');
        if (_prefix.Length > 0) ValidatePath(_prefix);
        _options = options ?? AzureBlobStoreOptions.Default;
        _retry = StorageRetry.Build(_options.Retry);
        _secrets = (secrets ?? []).Where(s => s.Length >= 4).OrderByDescending(s => s.Length).ToList();
        Location = location ?? $"{container.Uri.GetLeftPart(UriPartial.Path).TrimEnd('/')}{(_prefix.Length > 0 ? "/" + _prefix : "")}";
    }

    public string Location { get; }

    private static void ValidatePath(string path)
    {
        if (string.IsNullOrWhiteSpace(path) || path.StartsWith('/') || path.Split('/').Any(p => p is "" or "." or ".."))
            throw new ArgumentException($"invalid blob path '{path}'", nameof(path));
    }

    private string BlobName(string path)
    {
        ValidatePath(path);
        return _prefix.Length == 0 ? path : $"{_prefix}/{path}";
    }

    public async Task PutAsync(string path, ReadOnlyMemory<byte> content, bool createOnly = false, CancellationToken cancel = default)
    {
        var blob = _container.GetBlobClient(BlobName(path));
        var attempts = 0;
        await RunAsync("write", path, async ct =>
        {
            attempts++;
            var options = new BlobUploadOptions
            {
                Conditions = createOnly ? new BlobRequestConditions { IfNoneMatch = ETag.All } : null,
                TransferOptions = new StorageTransferOptions
                {
                    MaximumConcurrency = _options.MaximumConcurrency,
                    InitialTransferSize = _options.SingleUploadLimit,
                    MaximumTransferSize = _options.BlockSize,
                },
            };
            try
            {
                await UploadAsync(blob, content, options, ct);
            }
            catch (RequestFailedException e) when (createOnly && e.Status is 409 or 412)
            {
                // A retried create-only write may find its own earlier attempt (the response was lost): same bytes, done.
                if (attempts > 1 && await SameContentAsync(blob, content, ct)) return;
                throw new BlobAlreadyExistsException(path);
            }
        }, cancel);
    }

    private async Task UploadAsync(BlobClient blob, ReadOnlyMemory<byte> content, BlobUploadOptions options, CancellationToken cancel)
    {
        try
        {
            await blob.UploadAsync(new BinaryData(content), options, cancel);
        }
        catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            // The first write into a new container creates it.
            await _container.CreateIfNotExistsAsync(cancellationToken: cancel);
            await blob.UploadAsync(new BinaryData(content), options, cancel);
        }
    }

    private static async Task<bool> SameContentAsync(BlobClient blob, ReadOnlyMemory<byte> content, CancellationToken cancel)
    {
        var existing = await blob.DownloadContentAsync(cancel);
        return existing.Value.Content.ToMemory().Span.SequenceEqual(content.Span);
    }

    public Task<byte[]?> GetAsync(string path, CancellationToken cancel = default)
    {
        var blob = _container.GetBlobClient(BlobName(path));
        return RunAsync<byte[]?>("read", path, async ct =>
        {
            try
            {
                var result = await blob.DownloadContentAsync(ct);
                return result.Value.Content.ToArray();
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                return null;
            }
        }, cancel);
    }

    public Task<BlobProperties?> GetPropertiesAsync(string path, CancellationToken cancel = default)
    {
        var blob = _container.GetBlobClient(BlobName(path));
        return RunAsync<BlobProperties?>("read the properties of", path, async ct =>
        {
            try
            {
                var properties = (await blob.GetPropertiesAsync(cancellationToken: ct)).Value;
                return new BlobProperties(properties.ContentLength, properties.ETag.ToString());
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                return null;
            }
        }, cancel);
    }

    public Task<byte[]> GetRangeAsync(string path, long offset, int length, CancellationToken cancel = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var blob = _container.GetBlobClient(BlobName(path));
        return RunAsync("read a range of", path, async ct =>
        {
            try
            {
                if (length == 0)
                {
                    // HttpRange with length 0 means "to the end": ask only whether the blob exists.
                    await blob.GetPropertiesAsync(cancellationToken: ct);
                    return Array.Empty<byte>();
                }
                var result = await blob.DownloadContentAsync(new BlobDownloadOptions { Range = new HttpRange(offset, length) }, ct);
                return result.Value.Content.ToArray();
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                throw new FileNotFoundException($"blob '{path}' does not exist in {Location}", path);
            }
            catch (RequestFailedException e) when (e.Status == 416)
            {
                // The range starts at or past the end (or the blob is empty): no bytes, as a file read past its end.
                return Array.Empty<byte>();
            }
        }, cancel);
    }

    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancel = default)
    {
        var full = _prefix.Length == 0 ? prefix : $"{_prefix}/{prefix}";
        return RunAsync<IReadOnlyList<string>>("list", prefix, async ct =>
        {
            var names = new List<string>();
            try
            {
                await foreach (var item in _container.GetBlobsAsync(new GetBlobsOptions { Prefix = full }, ct))
                    names.Add(_prefix.Length == 0 ? item.Name : item.Name[(_prefix.Length + 1)..]);
            }
            catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode == BlobErrorCode.ContainerNotFound)
            {
                return [];
            }
            names.Sort(StringComparer.Ordinal);
            return names;
        }, cancel);
    }

    public Task DeleteAsync(string path, CancellationToken cancel = default)
    {
        var blob = _container.GetBlobClient(BlobName(path));
        return RunAsync("delete", path, async ct =>
        {
            try
            {
                await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: ct);
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                // The container is gone too: nothing to delete.
            }
        }, cancel);
    }

    private async Task RunAsync(string what, string path, Func<CancellationToken, Task> operation, CancellationToken cancel) =>
        await RunAsync<bool>(what, path, async ct => { await operation(ct); return true; }, cancel);

    /// <summary>Runs one storage operation under the retry policy and turns what is left of a failure into a
    /// <see cref="BlobStoreException"/> whose message names the location and blob, not the credential.</summary>
    private async Task<T> RunAsync<T>(string what, string path, Func<CancellationToken, Task<T>> operation, CancellationToken cancel)
    {
        var attempts = 0;
        try
        {
            return await _retry.ExecuteAsync(async ct =>
            {
                attempts++;
                return await operation(ct);
            }, cancel);
        }
        catch (Exception e) when (e is not (BlobAlreadyExistsException or FileNotFoundException or ArgumentException)
                                  && !(e is OperationCanceledException && cancel.IsCancellationRequested))
        {
            var transient = StorageRetry.IsTransient(e) || e is OperationCanceledException;
            var status = e is RequestFailedException r ? r.Status : 0;
            var tries = attempts == 1 ? "1 attempt" : $"{attempts} attempts";
            var message = $"cannot {what} blob '{path}' in {Location}: {Describe(e)} ({(transient ? $"storage unavailable after {tries}" : $"not retried, {tries}")})";
            throw new BlobStoreException(Redact(message), status, transient);
        }
    }

    /// <summary>What went wrong in a few words: the HTTP status and error code, or the innermost transport error.
    /// The SDK's own message is not used whole: it lists request headers and the service's reply.</summary>
    private static string Describe(Exception e)
    {
        if (e is RequestFailedException r && r.Status != 0)
            return $"HTTP {r.Status}{(r.ErrorCode is { Length: > 0 } code ? $" {code}" : "")}";
        if (e is Polly.Timeout.TimeoutRejectedException) return "the attempt timed out";
        var inner = e;
        while (inner.InnerException is not null) inner = inner.InnerException;
        var first = inner.Message.Split('\n', 2)[0].Trim();
        return $"{inner.GetType().Name}: {first}";
    }

    private string Redact(string message)
    {
        foreach (var secret in _secrets) message = message.Replace(secret, "[redacted]", StringComparison.Ordinal);
        return message;
    }

    public override string ToString() => Location;
}
