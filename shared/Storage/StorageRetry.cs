using Azure;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Training.Shared.Storage;

/// <summary>How storage calls are retried: how often, how long to wait between attempts, how long one attempt may take.</summary>
public sealed class StorageRetryOptions
{
    public static readonly StorageRetryOptions Default = new();

    /// <summary>Retries after the first attempt (so at most MaxRetryAttempts + 1 attempts).</summary>
    public int MaxRetryAttempts { get; init; } = 6;

    /// <summary>First backoff; doubled per retry, with jitter, up to <see cref="MaxDelay"/>.</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>One attempt of one operation (a whole blob upload or download included) is abandoned after this.</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Called before each retry with the retry number (1-based) and the failure; for logging.</summary>
    public Action<int, Exception>? OnRetry { get; init; }

    /// <summary>Also retry a <see cref="BlobStoreException"/> whose own retries ran out on a transient failure (storage
    /// down). Only for an outer policy around a store that retries by itself, such as the checkpoint commit.</summary>
    public bool RetryExhaustedStore { get; init; }

    /// <summary>
    /// The checkpoint commit's outer budget: a checkpoint is worth waiting for, and the trainer does not wait for it
    /// (it uploads in the background), so it rides out outages of minutes. Each of these attempts is one store call
    /// that itself retries for about 15 s (<see cref="Default"/>), then backs off 2 s, 4 s, ... up to 30 s:
    /// 9 attempts span about 4 minutes of a refused connection before the commit fails for good.
    /// </summary>
    public static readonly StorageRetryOptions CheckpointCommit = new()
    {
        MaxRetryAttempts = 8,
        BaseDelay = TimeSpan.FromSeconds(2),
        MaxDelay = TimeSpan.FromSeconds(30),
        // Above the inner attempt timeout (5 min), so an inner attempt is never cut short by the outer one.
        AttemptTimeout = TimeSpan.FromMinutes(6),
        RetryExhaustedStore = true,
    };

    /// <summary>These options with each retry reported to <paramref name="log"/> (see <see cref="LoggingTo"/>).</summary>
    public StorageRetryOptions WithLog(Action<string> log, string location) => new()
    {
        MaxRetryAttempts = MaxRetryAttempts,
        BaseDelay = BaseDelay,
        MaxDelay = MaxDelay,
        AttemptTimeout = AttemptTimeout,
        RetryExhaustedStore = RetryExhaustedStore,
        OnRetry = (retry, e) => log($"storage {location}: retry {retry}/{MaxRetryAttempts} after {Describe(e)}"),
    };

    private static string Describe(Exception e) => e switch
    {
        RequestFailedException r => $"HTTP {r.Status}{(r.Status == 0 ? " (no response)" : "")}",
        BlobStoreException b => $"storage unavailable (HTTP {b.Status}{(b.Status == 0 ? ", no response" : "")})",
        _ => e.GetType().Name,
    };

    /// <summary>The defaults, with each retry reported to <paramref name="log"/> as one line naming the location, the retry
    /// number and the HTTP status or exception type (never the exception's message, which may quote a request).</summary>
    public static StorageRetryOptions LoggingTo(Action<string> log, string location) => new()
    {
        OnRetry = (retry, e) => log($"storage {location}: retry {retry}/{Default.MaxRetryAttempts} after " +
            (e is RequestFailedException r ? $"HTTP {r.Status}{(r.Status == 0 ? " (no response)" : "")}" : e.GetType().Name)),
    };
}

/// <summary>
/// The one retry policy for blob storage (Polly): only transient failures are retried (throttling, 5xx, timeouts,
/// dropped or refused connections), with exponential backoff, jitter and a per-attempt timeout. A conflict, a missing
/// blob or a refused credential is final. Stores that retry on their own (<see cref="AzureBlobStore"/>) report what
/// is left after their retries as <see cref="BlobStoreException"/>, which this policy does not retry again.
/// </summary>
public static class StorageRetry
{
    /// <summary>HTTP statuses worth another attempt; 0 is the Azure SDK's "no response" (connection failed).</summary>
    public static bool IsTransientStatus(int status) => status is 0 or 408 or 429 or 500 or 502 or 503 or 504;

    /// <param name="exhaustedStore">Whether a store's own exhausted transient failure counts (an outer policy).</param>
    public static bool IsTransient(Exception e, bool exhaustedStore) =>
        exhaustedStore && e is BlobStoreException { Transient: true } || IsTransient(e);

    public static bool IsTransient(Exception e) => e switch
    {
        BlobAlreadyExistsException or BlobStoreException or FileNotFoundException => false,
        RequestFailedException r => IsTransientStatus(r.Status),
        TimeoutRejectedException or TimeoutException or HttpRequestException => true,
        // Local folders and HTTP transports both report broken connections and I/O hiccups as IOException.
        IOException => true,
        _ => false,
    };

    public static ResiliencePipeline Build(StorageRetryOptions? options = null)
    {
        options ??= StorageRetryOptions.Default;
        return new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e && (IsTransient(e, options.RetryExhaustedStore)
                    // An HTTP-level timeout surfaces as a cancellation nobody asked for.
                    || e is OperationCanceledException && !args.Context.CancellationToken.IsCancellationRequested)),
                MaxRetryAttempts = options.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                Delay = options.BaseDelay,
                MaxDelay = options.MaxDelay,
                UseJitter = true,
                OnRetry = args =>
                {
                    if (args.Outcome.Exception is { } e) options.OnRetry?.Invoke(args.AttemptNumber + 1, e);
                    return ValueTask.CompletedTask;
                },
            })
            .AddTimeout(options.AttemptTimeout)
            .Build();
    }
}
