using Parquet;

namespace Training.Shared.Data;

/// <summary>
/// Writes documents to one parquet file in the FineWeb-Edu schema, <see cref="RowGroupSize"/> rows per row group.
/// Documents are buffered only up to one row group; <see cref="Dispose"/> writes the last (partial) group and the footer.
/// </summary>
public sealed class ShardWriter : IDisposable
{
    private readonly string _path;
    private readonly FileStream _stream;
    private readonly ParquetWriter _writer;
    private readonly List<FineWebDocument> _pending = [];
    private bool _disposed;

    public ShardWriter(string path, int rowGroupSize)
    {
        if (rowGroupSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(rowGroupSize), rowGroupSize, "Row group size must be positive.");
        _path = Path.GetFullPath(path);
        RowGroupSize = rowGroupSize;
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        _stream = new FileStream(_path, FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        _writer = SyncOverAsync.Run(() => ParquetWriter.CreateAsync(ShardColumns.Schema, _stream));
    }

    public int RowGroupSize { get; }
    public long RowsWritten { get; private set; }
    public int RowGroupsWritten { get; private set; }

    /// <summary>Writes <paramref name="documents"/> to <paramref name="path"/> (replacing it) and returns the row count.</summary>
    public static long WriteFile(string path, IEnumerable<FineWebDocument> documents, int rowGroupSize)
    {
        using var writer = new ShardWriter(path, rowGroupSize);
        foreach (var document in documents) writer.Add(document);
        writer.Flush();
        return writer.RowsWritten;
    }

    public void Add(FineWebDocument document)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(document);
        if (document.Text is null) throw new ArgumentException($"Document '{document.Id}' has no text.", nameof(document));
        _pending.Add(document);
        if (_pending.Count == RowGroupSize) Flush();
    }

    /// <summary>Writes the buffered documents as a row group now (no-op when none are buffered).</summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_pending.Count == 0) return;
        SyncOverAsync.Run(() => WriteRowGroupAsync(_pending));
        RowsWritten += _pending.Count;
        RowGroupsWritten++;
        _pending.Clear();
    }

    private async Task WriteRowGroupAsync(IReadOnlyList<FineWebDocument> rows)
    {
        using var group = _writer.CreateRowGroup();
        // Columns must be written in schema order.
        await group.WriteAsync(ShardColumns.TextField, Column(rows, d => d.Text));
        await group.WriteAsync(ShardColumns.IdField, Column(rows, d => d.Id));
        await group.WriteAsync(ShardColumns.DumpField, Column(rows, d => d.Dump));
        await group.WriteAsync(ShardColumns.UrlField, Column(rows, d => d.Url));
        await group.WriteAsync(ShardColumns.FilePathField, Column(rows, d => d.FilePath));
        await group.WriteAsync(ShardColumns.LanguageField, Column(rows, d => d.Language));
        await group.WriteAsync<double>(ShardColumns.LanguageScoreField, NullableColumn(rows, d => d.LanguageScore));
        await group.WriteAsync<long>(ShardColumns.TokenCountField, NullableColumn(rows, d => d.TokenCount));
        await group.WriteAsync<double>(ShardColumns.ScoreField, NullableColumn(rows, d => d.Score));
        await group.WriteAsync<long>(ShardColumns.IntScoreField, NullableColumn(rows, d => d.IntScore));
        group.CompleteValidate();
    }

    private static string[] Column(IReadOnlyList<FineWebDocument> rows, Func<FineWebDocument, string> select)
    {
        var values = new string[rows.Count];
        for (var i = 0; i < values.Length; i++) values[i] = select(rows[i]);
        return values;
    }

    private static T?[] NullableColumn<T>(IReadOnlyList<FineWebDocument> rows, Func<FineWebDocument, T> select) where T : struct
    {
        var values = new T?[rows.Count];
        for (var i = 0; i < values.Length; i++) values[i] = select(rows[i]);
        return values;
    }

    public void Dispose()
    {
        if (_disposed) return;
        try
        {
            Flush();
        }
        finally
        {
            _disposed = true;
            // The writer emits the footer on dispose; the file is complete only after this.
            SyncOverAsync.Run(async () => await _writer.DisposeAsync());
            _stream.Dispose();
        }
    }

    public override string ToString() => $"ShardWriter({_path})";
}
