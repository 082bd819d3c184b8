using Parquet;

namespace Training.Shared.Data;

/// <summary>One row of a task shard: a prompt and the target a model should produce for it.</summary>
public sealed record TaskExample(string Id, string Prompt, string Target);

/// <summary>
/// Writes task examples to one parquet file (columns <c>id</c>, <c>prompt</c>, <c>target</c>), <paramref name="rowGroupSize"/>
/// rows per row group: the shards <see cref="TaskExampleStream"/> reads, locally or from blob storage.
/// </summary>
public static class TaskShardWriter
{
    /// <summary>Writes <paramref name="examples"/> to <paramref name="path"/> (replacing it); returns the row count.</summary>
    public static long WriteFile(string path, IEnumerable<TaskExample> examples, int rowGroupSize)
    {
        if (rowGroupSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(rowGroupSize), rowGroupSize, "Row group size must be positive.");
        path = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        // Written to a temporary name and renamed, so a reader never sees half a shard.
        var partial = path + ".partial";
        var rows = SyncOverAsync.Run(async () =>
        {
            long written = 0;
            await using var stream = new FileStream(partial, FileMode.Create, FileAccess.ReadWrite, FileShare.None);
            await using var writer = await ParquetWriter.CreateAsync(ShardColumns.TaskSchema, stream);
            foreach (var chunk in examples.Chunk(rowGroupSize))
            {
                foreach (var e in chunk)
                    if (e.Prompt is null || e.Target is null)
                        throw new ArgumentException($"Task example '{e.Id}' has no prompt or no target.", nameof(examples));
                using var group = writer.CreateRowGroup();
                await group.WriteAsync(ShardColumns.IdField, chunk.Select(e => e.Id ?? "").ToArray());
                await group.WriteAsync(ShardColumns.PromptField, chunk.Select(e => e.Prompt).ToArray());
                await group.WriteAsync(ShardColumns.TargetField, chunk.Select(e => e.Target).ToArray());
                group.CompleteValidate();
                written += chunk.Length;
            }
            return written;
        });
        File.Move(partial, path, overwrite: true);
        return rows;
    }
}

/// <summary>Reading task shards whole (evaluation sets, the importer's checks).</summary>
public static class TaskShards
{
    /// <summary>The first <paramref name="count"/> examples of <paramref name="sources"/> in file and row order (fewer if
    /// the shards hold fewer).</summary>
    public static IReadOnlyList<TaskExample> ReadAll(IReadOnlyList<IShardSource> sources, int count = int.MaxValue)
    {
        var examples = new List<TaskExample>();
        foreach (var source in sources)
        {
            using var reader = source.Open();
            for (var group = 0; group < reader.RowGroupCount && examples.Count < count; group++)
                examples.AddRange(reader.ReadTaskRowGroup(group).Take(count - examples.Count));
            if (examples.Count >= count) break;
        }
        return examples;
    }
}

/// <summary>
/// An endless stream of task examples, one row at a time. As with <see cref="PackedExampleStream"/>, units of shuffling
/// are (file, row group) pairs visited in a permutation seeded by (seed, epoch), their rows permuted too, or in file order
/// without shuffling; so
/// the n-th example is a pure function of (files, seed, n), independent of how many workers read. The cursor is a
/// <see cref="DataCursor"/> with no token offset and no carry (an example is never split).
/// </summary>
public sealed class TaskExampleStream : IDisposable
{
    private readonly IReadOnlyList<IShardSource> _files;
    private readonly long _seed;
    private readonly bool _shuffle;
    private readonly (int File, int RowGroup)[] _units;
    private int _epoch;
    private int _unitIndex;
    private int _rowInUnit;
    private long _examplesServed;
    private int[] _epochOrder;
    private int _loadedUnit = -1;
    private IReadOnlyList<TaskExample> _unitRows = [];
    private ShardReader? _reader;
    private int _readerFile = -1;
    private bool _disposed;

    public TaskExampleStream(IReadOnlyList<IShardSource> sources, long seed, bool shuffle, DataCursor? resumeFrom = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        if (sources.Count == 0) throw new ArgumentException("No task shard files were given.", nameof(sources));
        _files = [.. sources];
        _seed = seed;
        _shuffle = shuffle;
        var units = new List<(int, int)>();
        for (var file = 0; file < _files.Count; file++)
        {
            using var reader = _files[file].Open();
            if (!reader.IsTaskShard)
                throw new ShardFormatException(reader.FilePath,
                    $"is a text shard; seq2seq and distill read task shards (columns '{ShardColumns.Prompt}' and '{ShardColumns.Target}')");
            for (var group = 0; group < reader.RowGroupCount; group++) units.Add((file, group));
        }
        _units = [.. units];
        if (_units.Length == 0)
            throw new InvalidDataException($"The {_files.Count} task shard file(s) contain no row groups (first: '{_files[0].Name}').");

        var start = resumeFrom ?? DataCursor.Start;
        if (start.Epoch < 0 || start.UnitIndex < 0 || start.UnitIndex >= _units.Length || start.RowInUnit < 0
            || start.ExamplesServed < 0 || start.TokenOffsetInRow != 0 || start.Carry is not { Length: 0 })
            throw new ArgumentException($"{start} is not a position in these {_units.Length} task shard units: the cursor belongs to other data.",
                nameof(resumeFrom));
        (_epoch, _unitIndex, _rowInUnit, _examplesServed) = (start.Epoch, start.UnitIndex, start.RowInUnit, start.ExamplesServed);
        _epochOrder = EpochOrder(_epoch);
    }

    /// <summary>The global index of the next example.</summary>
    public long ExamplesServed => _examplesServed;

    public DataCursor Cursor => new(_epoch, _unitIndex, _rowInUnit, 0, _examplesServed, []);

    public TaskExample Next()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var emptyUnits = 0;
        while (true)
        {
            Load(_epochOrder[_unitIndex]);
            if (_rowInUnit < _unitRows.Count) break;
            if (_rowInUnit > 0 && _unitRows.Count == 0 || _rowInUnit > _unitRows.Count)
                throw new ArgumentException($"Data cursor points at row {_rowInUnit} of a unit with {_unitRows.Count} rows: the cursor belongs to other task shards.");
            if (++emptyUnits > _units.Length)
                throw new InvalidDataException($"None of the {_files.Count} task shard file(s) holds an example with a prompt and a target.");
            Advance();
        }
        var example = _unitRows[_rowInUnit++];
        if (_rowInUnit >= _unitRows.Count) Advance();
        _examplesServed++;
        return example;
    }

    private void Advance()
    {
        _rowInUnit = 0;
        if (++_unitIndex < _units.Length) return;
        _unitIndex = 0;
        _epochOrder = EpochOrder(++_epoch);
        _loadedUnit = -1;   // the same unit is permuted differently next epoch
    }

    private void Load(int unit)
    {
        if (_loadedUnit == unit) return;
        var (file, rowGroup) = _units[unit];
        if (_reader is null || _readerFile != file)
        {
            _reader?.Dispose();
            _reader = null;
            _reader = _files[file].Open();
            _readerFile = file;
        }
        var rows = _reader.ReadTaskRowGroup(rowGroup);
        // Rows are shuffled within their unit too (a task file is often sorted), by (seed, epoch, unit).
        _unitRows = _shuffle
            ? [.. DeterministicShuffle.Permutation(rows.Count, _seed * 1_000_003 + unit, stream: _epoch).Select(i => rows[i])]
            : rows;
        _loadedUnit = unit;
    }

    private int[] EpochOrder(int epoch) =>
        _shuffle ? DeterministicShuffle.Permutation(_units.Length, _seed, stream: epoch) : [.. Enumerable.Range(0, _units.Length)];

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _reader?.Dispose();
    }
}
