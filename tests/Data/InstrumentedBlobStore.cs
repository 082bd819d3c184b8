using Training.Shared.Storage;

namespace Training.Tests.Data;

/// <summary>A real store (usually <see cref="LocalFolderBlobStore"/>) seen through a wrapper that counts the requests
/// and can add a network-like delay to every read, to show what the shard readers ask of a remote store.</summary>
internal sealed class InstrumentedBlobStore(IBlobStore inner, TimeSpan latency = default) : IBlobStore
{
    private long _wholeGets, _rangeGets, _rangeBytes, _propertyReads;

    public IBlobStore Inner => inner;
    public TimeSpan Latency { get; set; } = latency;
    public long WholeGets => Interlocked.Read(ref _wholeGets);
    public long RangeGets => Interlocked.Read(ref _rangeGets);
    public long RangeBytes => Interlocked.Read(ref _rangeBytes);
    public long PropertyReads => Interlocked.Read(ref _propertyReads);
    public string Location => inner.Location;

    public Task PutAsync(string path, ReadOnlyMemory<byte> content, bool createOnly = false, CancellationToken cancel = default) =>
        inner.PutAsync(path, content, createOnly, cancel);

    public async Task<byte[]?> GetAsync(string path, CancellationToken cancel = default)
    {
        Interlocked.Increment(ref _wholeGets);
        await Delay(cancel);
        return await inner.GetAsync(path, cancel);
    }

    public async Task<BlobProperties?> GetPropertiesAsync(string path, CancellationToken cancel = default)
    {
        Interlocked.Increment(ref _propertyReads);
        await Delay(cancel);
        return await inner.GetPropertiesAsync(path, cancel);
    }

    public async Task<byte[]> GetRangeAsync(string path, long offset, int length, CancellationToken cancel = default)
    {
        Interlocked.Increment(ref _rangeGets);
        await Delay(cancel);
        var bytes = await inner.GetRangeAsync(path, offset, length, cancel);
        Interlocked.Add(ref _rangeBytes, bytes.LongLength);
        return bytes;
    }

    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancel = default) => inner.ListAsync(prefix, cancel);

    public Task DeleteAsync(string path, CancellationToken cancel = default) => inner.DeleteAsync(path, cancel);

    private Task Delay(CancellationToken cancel) => Latency > TimeSpan.Zero ? Task.Delay(Latency, cancel) : Task.CompletedTask;
}
