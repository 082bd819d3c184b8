namespace Training.Shared.Data;

/// <summary>
/// A seekable, read-only stream over one version of one blob. Reads are served from aligned blocks
/// (<see cref="BlobBlocks"/>: the cache, a prefetch under way, or a ranged GET), so a parquet reader that seeks to the
/// footer and then to one row group's column chunks fetches only those ranges, never the whole blob.
/// </summary>
public sealed class BlobRangeStream : Stream
{
    private readonly BlobBlocks _blocks;
    private long _position;
    private long _currentIndex = -1;
    private byte[] _current = [];
    private bool _disposed;

    public BlobRangeStream(BlobBlocks blocks)
    {
        _blocks = blocks ?? throw new ArgumentNullException(nameof(blocks));
    }

    public BlobBlocks Blocks => _blocks;
    public override bool CanRead => !_disposed;
    public override bool CanSeek => !_disposed;
    public override bool CanWrite => false;
    public override long Length => _blocks.Size;

    public override long Position
    {
        get => _position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _position = value;
        }
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            SeekOrigin.End => _blocks.Size + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin), origin, null),
        };
        if (target < 0) throw new IOException($"Cannot seek to {target}, before the start of blob '{_blocks.Name}'.");
        _position = target;
        return target;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (buffer.IsEmpty || _position >= _blocks.Size) return 0;
        var block = _position / _blocks.BlockSize;
        if (block != _currentIndex) Load(block, SyncOverAsync.Run(() => _blocks.GetAsync(block).AsTask()));
        return CopyOut(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (buffer.IsEmpty || _position >= _blocks.Size) return 0;
        var block = _position / _blocks.BlockSize;
        if (block != _currentIndex) Load(block, await _blocks.GetAsync(block, cancellationToken));
        return CopyOut(buffer.Span);
    }

    private void Load(long index, byte[] bytes)
    {
        _currentIndex = index;
        _current = bytes;
    }

    // Copies from the current block only: a read never spans blocks (callers loop, as Stream allows).
    private int CopyOut(Span<byte> buffer)
    {
        var inBlock = (int)(_position - _currentIndex * _blocks.BlockSize);
        var count = Math.Min(buffer.Length, _current.Length - inBlock);
        _current.AsSpan(inBlock, count).CopyTo(buffer);
        _position += count;
        return count;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException("A blob range stream is read-only.");
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("A blob range stream is read-only.");

    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        _current = [];
        base.Dispose(disposing);
    }
}
