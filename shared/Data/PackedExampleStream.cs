namespace Training.Shared.Data;

/// <summary>
/// An endless stream of training windows of exactly <see cref="WindowLength"/> tokens, packed from shard documents.
/// <para>
/// Units of shuffling are (file, row group) pairs. Epoch <c>e</c> visits them in a permutation seeded by
/// (seed, e) — or in file order when <c>shuffle</c> is false (eval). Each document is tokenized and followed by EOS;
/// tokens run on across documents, and the partial window at the end of an epoch continues into the next one. So the
/// n-th window is a pure function of (files, tokenizer, window length, seed, n), independent of how many workers read.
/// </para>
/// <para>
/// <see cref="Cursor"/> is a small resumable position; a stream constructed with it yields exactly the windows the
/// original would have yielded next, reading only the row group it resumes in. Not thread-safe: one reader per stream.
/// </para>
/// <para>
/// Shards come from <see cref="IShardSource"/>s (local files or blobs); the order and the cursor depend only on the
/// shards' row groups, never on where they are stored. Whenever the stream starts a unit it tells the source of the next
/// <c>prefetchUnits</c> units in this order (crossing into the next epoch), so a blob source fetches them in the background.
/// </para>
/// </summary>
public sealed class PackedExampleStream : IDisposable
{
    private readonly IReadOnlyList<IShardSource> _files;
    private readonly int _prefetchUnits;
    private readonly ITokenizer _tokenizer;
    private readonly long _seed;
    private readonly bool _shuffle;
    private readonly (int File, int RowGroup)[] _units;

    // Position (what the cursor records).
    private int _epoch;
    private int _unitIndex;
    private int _rowInUnit;
    private int _tokenOffsetInRow;
    private long _examplesServed;
    private int[] _carry;

    // Caches of what the position points at.
    private int[] _epochOrder;
    private int[]? _nextEpochOrder;
    private int _loadedUnit = -1;
    private IReadOnlyList<FineWebDocument> _unitRows = [];
    private int[]? _rowTokens;
    private ShardReader? _reader;
    private int _readerFile = -1;
    private bool _disposed;

    public PackedExampleStream(
        IReadOnlyList<string> files, ITokenizer tokenizer, int windowLength, long seed, bool shuffle, DataCursor? resumeFrom = null)
        : this(LocalSources(files), tokenizer, windowLength, seed, shuffle, resumeFrom)
    {
    }

    /// <param name="prefetchUnits">Units ahead of the current one whose bytes are fetched in the background (0 to 2).</param>
    public PackedExampleStream(
        IReadOnlyList<IShardSource> sources, ITokenizer tokenizer, int windowLength, long seed, bool shuffle,
        DataCursor? resumeFrom = null, int prefetchUnits = 1)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (sources.Count == 0) throw new ArgumentException("No shard files were given.", nameof(sources));
        if (windowLength <= 0)
            throw new ArgumentOutOfRangeException(nameof(windowLength), windowLength, "Window length must be positive.");
        if (prefetchUnits is < 0 or > 2)
            throw new ArgumentOutOfRangeException(nameof(prefetchUnits), prefetchUnits, "Prefetch at most two units ahead.");

        _files = [.. sources];
        _prefetchUnits = prefetchUnits;
        _tokenizer = tokenizer;
        WindowLength = windowLength;
        _seed = seed;
        _shuffle = shuffle;
        _units = ListUnits(_files);
        if (_units.Length == 0)
            throw new InvalidDataException($"The {_files.Count} shard file(s) contain no row groups (first: '{_files[0].Name}').");

        var start = resumeFrom ?? DataCursor.Start;
        Validate(start);
        _epoch = start.Epoch;
        _unitIndex = start.UnitIndex;
        _rowInUnit = start.RowInUnit;
        _tokenOffsetInRow = start.TokenOffsetInRow;
        _examplesServed = start.ExamplesServed;
        _carry = [.. start.Carry];
        _epochOrder = EpochOrder(_epoch);
    }

    private static IReadOnlyList<IShardSource> LocalSources(IReadOnlyList<string> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        return [.. files.Select(f => new LocalShardSource(f))];
    }

    public int WindowLength { get; }
    public ITokenizer Tokenizer => _tokenizer;

    /// <summary>Number of (file, row group) units one epoch visits.</summary>
    public int UnitCount => _units.Length;

    /// <summary>The position after the last window returned; pass it as <c>resumeFrom</c> to continue from here.</summary>
    public DataCursor Cursor => new(_epoch, _unitIndex, _rowInUnit, _tokenOffsetInRow, _examplesServed, [.. _carry]);

    /// <summary>The next window: exactly <see cref="WindowLength"/> token ids.</summary>
    public int[] Next()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var window = new int[WindowLength];
        _carry.CopyTo(window, 0);
        var filled = _carry.Length;
        _carry = [];

        while (filled < WindowLength)
        {
            var tokens = CurrentRowTokens();
            var take = Math.Min(WindowLength - filled, tokens.Length - _tokenOffsetInRow);
            Array.Copy(tokens, _tokenOffsetInRow, window, filled, take);
            filled += take;
            _tokenOffsetInRow += take;
            if (_tokenOffsetInRow == tokens.Length) AdvanceRow();
        }

        // Keep the cursor cheap to resume: a row remainder too short to fill a window by itself travels as carry,
        // so a resume starts at a row boundary and never re-tokenizes a half-served short document.
        if (_rowTokens is { } current && _tokenOffsetInRow > 0 && current.Length - _tokenOffsetInRow < WindowLength)
        {
            _carry = current[_tokenOffsetInRow..];
            AdvanceRow();
        }

        _examplesServed++;
        return window;
    }

    private int[] CurrentRowTokens()
    {
        if (_rowTokens is not null) return _rowTokens;
        var emptyUnitsInARow = 0;
        while (true)
        {
            LoadUnit(_epochOrder[_unitIndex]);
            if (_rowInUnit < _unitRows.Count) break;
            if (_rowInUnit > 0 || _tokenOffsetInRow > 0)
                throw new ArgumentException(
                    $"Data cursor points at row {_rowInUnit} of {Describe(_epochOrder[_unitIndex])}, which has only " +
                    $"{_unitRows.Count} rows: the cursor belongs to other shard files.");
            // A row group whose rows all have null text holds no documents; an epoch of them would loop forever.
            if (++emptyUnitsInARow > _units.Length)
                throw new InvalidDataException($"None of the {_files.Count} shard file(s) holds a document with text.");
            AdvanceUnit();
        }

        var tokens = _tokenizer.Encode(_unitRows[_rowInUnit].Text);
        var withEos = new int[tokens.Length + 1];
        tokens.CopyTo(withEos, 0);
        withEos[^1] = _tokenizer.Special.Eos;
        if (_tokenOffsetInRow >= withEos.Length)
            throw new ArgumentException(
                $"Data cursor token offset {_tokenOffsetInRow} is past the {withEos.Length} tokens of row {_rowInUnit} in " +
                $"{Describe(_epochOrder[_unitIndex])}: the cursor belongs to other files or another tokenizer.");
        _rowTokens = withEos;
        return withEos;
    }

    private void AdvanceRow()
    {
        _rowTokens = null;
        _tokenOffsetInRow = 0;
        _rowInUnit++;
        // The unit is loaded here (we just read from it), so its end is known: move the cursor to the next unit now.
        if (_rowInUnit >= _unitRows.Count) AdvanceUnit();
    }

    private void AdvanceUnit()
    {
        _rowTokens = null;
        _tokenOffsetInRow = 0;
        _rowInUnit = 0;
        _unitIndex++;
        if (_unitIndex < _units.Length) return;
        _unitIndex = 0;
        _epoch++;
        _epochOrder = _nextEpochOrder ?? EpochOrder(_epoch);
        _nextEpochOrder = null;
    }

    private void LoadUnit(int unit)
    {
        if (_loadedUnit == unit) return;
        var (file, rowGroup) = _units[unit];
        if (_reader is null || _readerFile != file)
        {
            _reader?.Dispose();
            _reader = null;
            _readerFile = -1;
            _reader = _files[file].Open();
            _readerFile = file;
        }

        PrefetchAhead();
        _unitRows = _reader.ReadRowGroup(rowGroup);
        _loadedUnit = unit;
    }

    // Tells the sources of the next units in the visiting order (into the next epoch) that they are read soon.
    private void PrefetchAhead()
    {
        for (var ahead = 1; ahead <= _prefetchUnits; ahead++)
        {
            var position = _unitIndex + ahead;
            int unit;
            if (position < _units.Length)
            {
                unit = _epochOrder[position];
            }
            else
            {
                _nextEpochOrder ??= EpochOrder(_epoch + 1);
                unit = _nextEpochOrder[position - _units.Length];
            }

            var (file, rowGroup) = _units[unit];
            _files[file].Prefetch(rowGroup);
        }
    }

    private int[] EpochOrder(int epoch)
    {
        if (!_shuffle)
        {
            var identity = new int[_units.Length];
            for (var i = 0; i < identity.Length; i++) identity[i] = i;
            return identity;
        }

        return DeterministicShuffle.Permutation(_units.Length, _seed, stream: epoch);
    }

    private static (int File, int RowGroup)[] ListUnits(IReadOnlyList<IShardSource> files)
    {
        var units = new List<(int, int)>();
        for (var file = 0; file < files.Count; file++)
        {
            using var reader = files[file].Open();
            for (var group = 0; group < reader.RowGroupCount; group++) units.Add((file, group));
        }

        return [.. units];
    }

    private void Validate(DataCursor cursor)
    {
        void Fail(string field, object value, string rule) =>
            throw new ArgumentException($"Data cursor field {field} = {value} is invalid: {rule}.", "resumeFrom");

        if (cursor.Epoch < 0) Fail(nameof(cursor.Epoch), cursor.Epoch, "must not be negative");
        if (cursor.UnitIndex < 0 || cursor.UnitIndex >= _units.Length)
            Fail(nameof(cursor.UnitIndex), cursor.UnitIndex, $"these files have {_units.Length} units (file, row group)");
        if (cursor.RowInUnit < 0) Fail(nameof(cursor.RowInUnit), cursor.RowInUnit, "must not be negative");
        if (cursor.TokenOffsetInRow < 0) Fail(nameof(cursor.TokenOffsetInRow), cursor.TokenOffsetInRow, "must not be negative");
        if (cursor.ExamplesServed < 0) Fail(nameof(cursor.ExamplesServed), cursor.ExamplesServed, "must not be negative");
        if (cursor.Carry is null) Fail(nameof(cursor.Carry), "null", "must be an array (possibly empty)");
        if (cursor.Carry!.Length >= WindowLength)
            Fail(nameof(cursor.Carry), $"{cursor.Carry.Length} tokens", $"must be shorter than the window length {WindowLength}");
        foreach (var id in cursor.Carry)
            if (id < 0 || id >= _tokenizer.VocabSize)
                Fail(nameof(cursor.Carry), id, $"token ids must be in [0, {_tokenizer.VocabSize}) for tokenizer '{_tokenizer.Name}'");
    }

    private string Describe(int unit) => $"'{_files[_units[unit].File].Name}' row group {_units[unit].RowGroup}";

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _reader?.Dispose();
        _reader = null;
    }
}
