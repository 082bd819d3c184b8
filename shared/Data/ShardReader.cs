using Parquet;
using Parquet.Schema;

namespace Training.Shared.Data;

/// <summary>
/// Reads one parquet shard a row group at a time: a FineWeb-Edu text shard (only the <c>text</c> column is required;
/// missing optional columns take defaults) or a task shard (<c>prompt</c> and <c>target</c>, optional <c>id</c>; see
/// <see cref="IsTaskShard"/>). Rows whose text (prompt or target) is null are skipped and counted in
/// <see cref="NullTextRowsSkipped"/>.
/// </summary>
public sealed class ShardReader : IDisposable
{
    // Real shards may store byte arrays without the UTF-8 annotation; read them as strings.
    private static readonly ParquetOptions ReadOptions = new() { TreatByteArrayAsString = true };

    private readonly Stream _stream;
    private readonly ParquetReader _reader;
    private readonly DataField _text;   // the text column, or a task shard's prompt column
    private readonly DataField? _target;
    private bool _disposed;
    private readonly DataField? _id, _dump, _url, _filePath, _language, _languageScore, _tokenCount, _score, _intScore;

    /// <summary>Opens a shard in a local file.</summary>
    public ShardReader(string path) : this(OpenFile(Path.GetFullPath(path)), Path.GetFullPath(path))
    {
    }

    /// <summary>Reads a shard from a seekable stream (for example a <see cref="BlobRangeStream"/>), which the reader
    /// owns from now on; <paramref name="name"/> is what messages call the shard.</summary>
    public ShardReader(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (!stream.CanSeek || !stream.CanRead)
        {
            stream.Dispose();
            throw new ArgumentException("A shard stream must be readable and seekable.", nameof(stream));
        }

        FilePath = name;
        _stream = stream;
        try
        {
            _reader = SyncOverAsync.Run(() => ParquetReader.CreateAsync(_stream, ReadOptions, leaveStreamOpen: true));
        }
        catch (ShardFormatException)
        {
            _stream.Dispose();
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _stream.Dispose();
            throw new ShardFormatException(FilePath, $"not a readable parquet file ({e.Message})", inner: e);
        }

        try
        {
            var fields = _reader.Schema.DataFields;
            var text = Find(fields, ShardColumns.Text);
            if (text is null && Find(fields, ShardColumns.Prompt) is { } prompt)
            {
                _target = Find(fields, ShardColumns.Target)
                          ?? throw new ShardFormatException(FilePath,
                              $"has a '{ShardColumns.Prompt}' column but no '{ShardColumns.Target}' column: a task shard needs both " +
                              $"(columns: {string.Join(", ", fields.Select(f => f.Name))})");
                RequireStringColumn(_target);
                text = prompt;
            }
            _text = text ?? throw new ShardFormatException(FilePath,
                $"missing required column '{ShardColumns.Text}' (or '{ShardColumns.Prompt}' and '{ShardColumns.Target}' for a task shard; " +
                $"columns: {string.Join(", ", fields.Select(f => f.Name))})");
            RequireStringColumn(_text);
            _id = OptionalString(fields, ShardColumns.Id);
            _dump = OptionalString(fields, ShardColumns.Dump);
            _url = OptionalString(fields, ShardColumns.Url);
            _filePath = OptionalString(fields, ShardColumns.FilePath);
            _language = OptionalString(fields, ShardColumns.Language);
            _languageScore = OptionalNumber(fields, ShardColumns.LanguageScore);
            _tokenCount = OptionalNumber(fields, ShardColumns.TokenCount);
            _score = OptionalNumber(fields, ShardColumns.Score);
            _intScore = OptionalNumber(fields, ShardColumns.IntScore);
            RowCount = _reader.Metadata?.NumRows ?? _reader.RowGroups.Sum(g => g.RowCount);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private static FileStream OpenFile(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (FileNotFoundException e)
        {
            throw new FileNotFoundException($"Shard '{path}' does not exist.", path, e);
        }
    }

    /// <summary>The shard's name in messages: the absolute file path, or the blob's store location and path.</summary>
    public string FilePath { get; }

    /// <summary>Whether this is a task shard (prompt/target pairs for seq2seq and distillation) rather than text.</summary>
    public bool IsTaskShard => _target is not null;

    public int RowGroupCount => _reader.RowGroupCount;

    /// <summary>Rows in the file as stored, null-text rows included.</summary>
    public long RowCount { get; }

    /// <summary>How many rows with a null <c>text</c> this reader has skipped so far (each read counts again).</summary>
    public long NullTextRowsSkipped { get; private set; }

    /// <summary>Rows stored in one row group (from metadata, without reading data).</summary>
    public long RowGroupRowCount(int index)
    {
        CheckRowGroupIndex(index);
        return _reader.RowGroups[index].RowCount;
    }

    /// <summary>Bytes [Offset, Offset + Length) of the file that hold one row group's column chunks (from the footer),
    /// which is what reading the row group fetches.</summary>
    public (long Offset, long Length) RowGroupByteRange(int index)
    {
        CheckRowGroupIndex(index);
        long first = long.MaxValue, end = 0;
        foreach (var chunk in _reader.Metadata!.RowGroups[index].Columns)
        {
            if (chunk.MetaData is not { } column) continue;
            var start = column.DictionaryPageOffset is > 0 and var dictionary && dictionary < column.DataPageOffset
                ? dictionary
                : column.DataPageOffset;
            first = Math.Min(first, start);
            end = Math.Max(end, start + column.TotalCompressedSize);
        }

        return first >= end ? (0, 0) : (first, end - first);
    }

    /// <summary>
    /// Checks what the footer says about the row groups without reading row data: the row counts add up to the file's,
    /// every row group has a <c>text</c> column chunk of byte arrays holding one value per row, and every column chunk
    /// lies between the leading magic and the footer. Throws <see cref="ShardFormatException"/> naming the row group.
    /// </summary>
    public void CheckLayout()
    {
        var metadata = _reader.Metadata ?? throw new ShardFormatException(FilePath, "the footer holds no file metadata");
        var (dataEnd, footerLength) = FooterBounds();
        if (footerLength <= 0 || dataEnd < 4)
            throw new ShardFormatException(FilePath, $"the footer length {footerLength} does not fit the file's {_stream.Length} bytes");
        long rows = 0;
        for (var group = 0; group < metadata.RowGroups.Count; group++)
        {
            var rowGroup = metadata.RowGroups[group];
            if (rowGroup.NumRows < 0)
                throw new ShardFormatException(FilePath, $"the footer gives a negative row count ({rowGroup.NumRows})", group);
            rows += rowGroup.NumRows;
            var text = false;
            foreach (var chunk in rowGroup.Columns)
            {
                var column = chunk.MetaData
                             ?? throw new ShardFormatException(FilePath, "a column chunk has no metadata in the footer", group);
                var name = string.Join('.', column.PathInSchema);
                var start = column.DictionaryPageOffset is > 0 and var dictionary && dictionary < column.DataPageOffset
                    ? dictionary
                    : column.DataPageOffset;
                if (start < 4 || column.TotalCompressedSize <= 0 || start + column.TotalCompressedSize > dataEnd)
                    throw new ShardFormatException(FilePath,
                        $"column '{name}' claims bytes {start}..{start + column.TotalCompressedSize} but row data lies in bytes " +
                        $"4..{dataEnd} of the file (truncated, or the footer is damaged)", group);
                if (name != _text.Name) continue;
                text = true;
                if (column.Type != Parquet.Meta.Type.BYTE_ARRAY)
                    throw new ShardFormatException(FilePath, $"column '{_text.Name}' is stored as {column.Type}; expected a string column", group);
                if (column.NumValues != rowGroup.NumRows)
                    throw new ShardFormatException(FilePath,
                        $"column '{_text.Name}' holds {column.NumValues} values for {rowGroup.NumRows} rows", group);
            }
            if (!text) throw new ShardFormatException(FilePath, $"the row group has no '{_text.Name}' column chunk", group);
        }
        if (rows != metadata.NumRows)
            throw new ShardFormatException(FilePath, $"the row groups hold {rows} rows but the footer says {metadata.NumRows}");
    }

    // A parquet file ends with the footer, its 4-byte little-endian length and the magic "PAR1".
    private (long DataEnd, long FooterLength) FooterBounds()
    {
        Span<byte> tail = stackalloc byte[8];
        var length = _stream.Length;
        if (length < 12) return (0, 0);
        var position = _stream.Position;
        try
        {
            _stream.Position = length - 8;
            _stream.ReadExactly(tail);
        }
        finally
        {
            _stream.Position = position;
        }
        long footer = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(tail);
        return (length - 8 - footer, footer);
    }

    /// <summary>The documents of one row group, null-text rows left out.</summary>
    public IReadOnlyList<FineWebDocument> ReadRowGroup(int index)
    {
        CheckRowGroupIndex(index);
        if (IsTaskShard)
            throw new ShardFormatException(FilePath,
                $"is a task shard ('{ShardColumns.Prompt}', '{ShardColumns.Target}'); this objective reads text shards (column '{ShardColumns.Text}')");
        try
        {
            return SyncOverAsync.Run(() => ReadRowGroupAsync(index));
        }
        catch (ShardFormatException)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ShardFormatException(FilePath, $"cannot read row group ({e.Message})", rowGroup: index, inner: e);
        }
    }

    /// <summary>The prompt/target pairs of one row group of a task shard, rows with a null prompt or target left out.</summary>
    public IReadOnlyList<TaskExample> ReadTaskRowGroup(int index)
    {
        CheckRowGroupIndex(index);
        if (!IsTaskShard)
            throw new ShardFormatException(FilePath,
                $"is a text shard; seq2seq and distill read task shards (columns '{ShardColumns.Prompt}' and '{ShardColumns.Target}')");
        try
        {
            return SyncOverAsync.Run(async () =>
            {
                var group = _reader.OpenRowGroupReader(index);
                var rows = checked((int)group.RowCount);
                var prompts = (await ReadStrings(group, _text, rows))!;
                var targets = (await ReadStrings(group, _target, rows))!;
                var ids = await ReadStrings(group, _id, rows);
                var examples = new List<TaskExample>(rows);
                for (var row = 0; row < rows; row++)
                {
                    if (prompts[row] is not { } prompt || targets[row] is not { } target)
                    {
                        NullTextRowsSkipped++;
                        continue;
                    }
                    examples.Add(new TaskExample(ids?[row] ?? "", prompt, target));
                }
                return (IReadOnlyList<TaskExample>)examples;
            });
        }
        catch (ShardFormatException)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ShardFormatException(FilePath, $"cannot read row group ({e.Message})", rowGroup: index, inner: e);
        }
    }

    /// <summary>Every document of the file in order, holding one row group in memory at a time.</summary>
    public IEnumerable<FineWebDocument> ReadAll()
    {
        for (var group = 0; group < RowGroupCount; group++)
            foreach (var document in ReadRowGroup(group))
                yield return document;
    }

    private async Task<IReadOnlyList<FineWebDocument>> ReadRowGroupAsync(int index)
    {
        var group = _reader.OpenRowGroupReader(index);
        var rows = checked((int)group.RowCount);

        var texts = await ReadStrings(group, _text, rows);
        var ids = await ReadStrings(group, _id, rows);
        var dumps = await ReadStrings(group, _dump, rows);
        var urls = await ReadStrings(group, _url, rows);
        var filePaths = await ReadStrings(group, _filePath, rows);
        var languages = await ReadStrings(group, _language, rows);
        var languageScores = await ReadNumbers(group, _languageScore, rows);
        var tokenCounts = await ReadNumbers(group, _tokenCount, rows);
        var scores = await ReadNumbers(group, _score, rows);
        var intScores = await ReadNumbers(group, _intScore, rows);

        var documents = new List<FineWebDocument>(rows);
        for (var row = 0; row < rows; row++)
        {
            var text = texts![row];
            if (text is null)
            {
                NullTextRowsSkipped++;
                continue;
            }

            documents.Add(new FineWebDocument(
                text,
                ids?[row] ?? "",
                dumps?[row] ?? "",
                urls?[row] ?? "",
                filePaths?[row] ?? "",
                languages?[row] ?? "",
                languageScores?[row] ?? 0,
                WholeNumber(tokenCounts?[row], ShardColumns.TokenCount, index, row),
                scores?[row] ?? 0,
                WholeNumber(intScores?[row], ShardColumns.IntScore, index, row)));
        }

        return documents;
    }

    private static async Task<string?[]?> ReadStrings(ParquetRowGroupReader group, DataField? field, int rows)
    {
        if (field is null) return null;
        var values = new string?[rows];
        await group.ReadAsync(field, values!);
        return values;
    }

    // Numeric columns are widened to double so int16/int32/int64/float/double variants of the schema all load.
    private static readonly Type[] NumberTypes = [typeof(double), typeof(float), typeof(long), typeof(int), typeof(short)];

    private static async Task<double?[]?> ReadNumbers(ParquetRowGroupReader group, DataField? field, int rows)
    {
        if (field is null) return null;
        var type = Nullable.GetUnderlyingType(field.ClrType) ?? field.ClrType;
        if (type == typeof(double)) return await Read<double>(group, field, rows, v => v);
        if (type == typeof(float)) return await Read<float>(group, field, rows, v => v);
        if (type == typeof(long)) return await Read<long>(group, field, rows, v => v);
        if (type == typeof(int)) return await Read<int>(group, field, rows, v => v);
        if (type == typeof(short)) return await Read<short>(group, field, rows, v => v);
        throw new System.Diagnostics.UnreachableException($"Column '{field.Name}' of type {type.Name} passed the open-time check.");
    }

    private static async Task<double?[]> Read<T>(ParquetRowGroupReader group, DataField field, int rows, Func<T, double> widen)
        where T : struct
    {
        var raw = new T?[rows];
        await group.ReadAsync<T>(field, raw);
        var values = new double?[rows];
        for (var i = 0; i < rows; i++) values[i] = raw[i] is { } v ? widen(v) : null;
        return values;
    }

    // Count columns may be stored as floating point by other writers; a fractional or NaN count is a broken row.
    private long WholeNumber(double? value, string column, int rowGroup, int row)
    {
        if (value is not { } number) return 0;
        if (!double.IsFinite(number) || Math.Floor(number) != number || Math.Abs(number) > long.MaxValue)
            throw new ShardFormatException(FilePath, $"column '{column}' holds {number}, which is not a whole number", rowGroup, row);
        return (long)number;
    }

    private static DataField? Find(IEnumerable<DataField> fields, string name) =>
        fields.FirstOrDefault(f => f.Name == name && f.Path.Length == 1 && !f.IsArray);

    private DataField? OptionalString(IEnumerable<DataField> fields, string name)
    {
        var field = Find(fields, name);
        if (field is not null) RequireStringColumn(field);
        return field;
    }

    private DataField? OptionalNumber(IEnumerable<DataField> fields, string name)
    {
        var field = Find(fields, name);
        if (field is null) return null;
        var type = Nullable.GetUnderlyingType(field.ClrType) ?? field.ClrType;
        if (!NumberTypes.Contains(type))
            throw new ShardFormatException(FilePath, $"column '{field.Name}' has type {type.Name}; expected a number");
        return field;
    }

    private void RequireStringColumn(DataField field)
    {
        var type = field.ClrType;
        if (type != typeof(string) && type != typeof(ReadOnlyMemory<char>))
            throw new ShardFormatException(FilePath, $"column '{field.Name}' has type {type.Name}; expected a string column");
    }

    private void CheckRowGroupIndex(int index)
    {
        if (index < 0 || index >= RowGroupCount)
            throw new ArgumentOutOfRangeException(nameof(index), index,
                $"Shard '{FilePath}' has {RowGroupCount} row groups; row group {index} does not exist.");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        SyncOverAsync.Run(async () => await _reader.DisposeAsync());
        _stream.Dispose();
    }
}
