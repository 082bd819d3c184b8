using NUnit.Framework;
using Parquet;
using Parquet.Schema;
using Training.Shared.Data;

namespace Training.Tests.Data;

public class ShardReaderWriterTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    [Test]
    public void WriteThenRead_AllColumnsInSeveralRowGroups_RoundTrips()
    {
        var documents = SampleDocuments.Make(10);
        var path = _temp.File("all.parquet");

        var written = ShardWriter.WriteFile(path, documents, rowGroupSize: 4);

        using var reader = new ShardReader(path);
        Assert.Multiple(() =>
        {
            Assert.That(written, Is.EqualTo(10));
            Assert.That(reader.RowGroupCount, Is.EqualTo(3));
            Assert.That(reader.RowCount, Is.EqualTo(10L));
            Assert.That(reader.ReadRowGroup(0), Is.EqualTo(documents.Take(4)));
            Assert.That(reader.ReadRowGroup(2), Is.EqualTo(documents.Skip(8)));
            Assert.That(reader.ReadAll().ToList(), Is.EqualTo(documents));
            Assert.That(reader.NullTextRowsSkipped, Is.EqualTo(0));
        });
    }

    [Test]
    public void WriteFile_SchemaOnDisk_HasTheFineWebEduColumns()
    {
        var path = _temp.File("schema.parquet");
        ShardWriter.WriteFile(path, SampleDocuments.Make(2), rowGroupSize: 10);

        var schema = Sync(() => ParquetReader.ReadSchemaAsync(path));

        Assert.That(schema.DataFields.Select(f => f.Name), Is.EqualTo(new[]
        {
            "text", "id", "dump", "url", "file_path", "language", "language_score", "token_count", "score", "int_score",
        }));
    }

    [Test]
    public void ReadAll_LaterRowGroupCorrupt_StreamsEarlierGroupsThenNamesTheBadGroup()
    {
        var path = _temp.File("stream.parquet");
        var documents = SampleDocuments.Make(6);
        ShardWriter.WriteFile(path, documents, rowGroupSize: 3);
        CorruptColumnChunk(path, rowGroup: 1);

        using var reader = new ShardReader(path);
        var streamed = new List<FineWebDocument>();
        var error = Assert.Throws<ShardFormatException>(() =>
        {
            foreach (var document in reader.ReadAll()) streamed.Add(document);
        });

        Assert.Multiple(() =>
        {
            // The first group was yielded before the second was read: the file is never loaded whole.
            Assert.That(streamed, Is.EqualTo(documents.Take(3)));
            Assert.That(error!.Message, Does.Contain(path));
            Assert.That(error.Message, Does.Contain("row group 1"));
            Assert.That(error.RowGroup, Is.EqualTo(1));
        });
    }

    [Test]
    public void ReadAll_TextOnlyFile_LoadsWithDefaults()
    {
        var path = _temp.File("text-only.parquet");
        var text = new DataField<string>("text");
        WriteColumns(path, new ParquetSchema(text), async group => await group.WriteAsync(text, new[] { "first", "second" }));

        using var reader = new ShardReader(path);
        var documents = reader.ReadAll().ToList();

        Assert.That(documents, Is.EqualTo(new[] { FineWebDocument.FromText("first"), FineWebDocument.FromText("second") }));
    }

    [Test]
    public void ReadRowGroup_NullTexts_SkippedAndCounted()
    {
        var path = _temp.File("nulls.parquet");
        var text = new DataField<string>("text");
        var id = new DataField<string>("id");
        WriteColumns(path, new ParquetSchema(text, id), async group =>
        {
            await group.WriteAsync(text, new string?[] { "a", null, "c", null }!);
            await group.WriteAsync(id, new[] { "1", "2", "3", "4" });
        });

        using var reader = new ShardReader(path);
        var documents = reader.ReadRowGroup(0);

        Assert.Multiple(() =>
        {
            Assert.That(documents.Select(d => d.Id), Is.EqualTo(new[] { "1", "3" }));
            Assert.That(reader.NullTextRowsSkipped, Is.EqualTo(2));
            Assert.That(reader.RowCount, Is.EqualTo(4));
        });
    }

    [Test]
    public void ReadRowGroup_NarrowerNumericTypes_AreWidened()
    {
        var path = _temp.File("int32.parquet");
        var text = new DataField<string>("text");
        var tokenCount = new DataField<int>("token_count");
        var score = new DataField<float>("score");
        WriteColumns(path, new ParquetSchema(text, tokenCount, score), async group =>
        {
            await group.WriteAsync(text, new[] { "x" });
            await group.WriteAsync<int>(tokenCount, new[] { 7 });
            await group.WriteAsync<float>(score, new[] { 3.5f });
        });

        using var reader = new ShardReader(path);
        var document = reader.ReadRowGroup(0).Single();

        Assert.That((document.TokenCount, document.Score), Is.EqualTo((7L, 3.5)));
    }

    [Test]
    public void ReadRowGroup_FractionalTokenCount_ThrowsNamingFileRowGroupAndRow()
    {
        var path = _temp.File("fractional.parquet");
        var text = new DataField<string>("text");
        var tokenCount = new DataField<double>("token_count");
        WriteColumns(path, new ParquetSchema(text, tokenCount), async group =>
        {
            await group.WriteAsync(text, new[] { "a", "b" });
            await group.WriteAsync<double>(tokenCount, new[] { 3.0, 2.5 });
        });
        using var reader = new ShardReader(path);

        var error = Assert.Throws<ShardFormatException>(() => reader.ReadRowGroup(0));

        Assert.That(error!.Message, Does.Contain(path).And.Contain("row group 0").And.Contain("row 1").And.Contain("token_count"));
    }

    [Test]
    public void Open_NumericColumnStoredAsText_ThrowsNamingTheColumn()
    {
        var path = _temp.File("typed.parquet");
        var text = new DataField<string>("text");
        var score = new DataField<string>("score");
        WriteColumns(path, new ParquetSchema(text, score), async group =>
        {
            await group.WriteAsync(text, new[] { "a" });
            await group.WriteAsync(score, new[] { "high" });
        });

        var error = Assert.Throws<ShardFormatException>(() => new ShardReader(path).Dispose());

        Assert.That(error!.Message, Does.Contain(path).And.Contain("'score'"));
    }

    [Test]
    public void Open_NotParquet_ThrowsNamingTheFile()
    {
        var path = _temp.WriteText("notes.parquet", "this is plain text, not parquet at all");

        var error = Assert.Throws<ShardFormatException>(() => new ShardReader(path).Dispose());

        Assert.That(error!.Message, Does.Contain(path));
    }

    [Test]
    public void Open_TruncatedFile_ThrowsNamingTheFile()
    {
        var path = _temp.File("truncated.parquet");
        ShardWriter.WriteFile(path, SampleDocuments.Make(20), rowGroupSize: 5);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);

        var error = Assert.Throws<ShardFormatException>(() => new ShardReader(path).Dispose());

        Assert.That(error!.Message, Does.Contain(path));
    }

    [Test]
    public void Open_NoTextColumn_ThrowsNamingFileAndColumn()
    {
        var path = _temp.File("no-text.parquet");
        var body = new DataField<string>("body");
        WriteColumns(path, new ParquetSchema(body), async group => await group.WriteAsync(body, new[] { "x" }));

        var error = Assert.Throws<ShardFormatException>(() => new ShardReader(path).Dispose());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain(path));
            Assert.That(error.Message, Does.Contain("'text'"));
            Assert.That(error.Message, Does.Contain("body"));
        });
    }

    [Test]
    public void ReadRowGroup_IndexOutOfRange_Throws()
    {
        var path = _temp.File("one.parquet");
        ShardWriter.WriteFile(path, SampleDocuments.Make(1), rowGroupSize: 1);
        using var reader = new ShardReader(path);

        Assert.Throws<ArgumentOutOfRangeException>(() => reader.ReadRowGroup(1));
    }

    private static void WriteColumns(string path, ParquetSchema schema, Func<ParquetRowGroupWriter, Task> writeColumns) =>
        Sync(async () =>
        {
            await using var stream = File.Create(path);
            await using var writer = await ParquetWriter.CreateAsync(schema, stream);
            using var group = writer.CreateRowGroup();
            await writeColumns(group);
            return 0;
        });

    // Overwrites the first page header of a row group's text column with garbage.
    private static void CorruptColumnChunk(string path, int rowGroup)
    {
        var offset = Sync(async () =>
        {
            await using var reader = await ParquetReader.CreateAsync(path);
            return reader.Metadata!.RowGroups[rowGroup].Columns[0].MetaData!.DataPageOffset;
        });
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
        stream.Position = offset;
        stream.Write(Enumerable.Repeat((byte)0xFF, 32).ToArray());
    }

    private static T Sync<T>(Func<Task<T>> work) => Task.Run(work).GetAwaiter().GetResult();
}
