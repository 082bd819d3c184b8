using System.Text.Json;
using NUnit.Framework;
using Parquet;
using Parquet.Schema;
using Training.Shared.Data;

namespace Training.Tests.Data;

public class PackedExampleStreamTests
{
    private const int RowGroupSize = 3;
    private TempFolder _temp = null!;
    private ByteTokenizer _tokenizer = null!;
    private List<string> _files = null!;
    private List<FineWebDocument> _documents = null!; // in file order
    private int _epochTokens; // document tokens + one EOS per document

    [SetUp]
    public void SetUp()
    {
        _temp = new TempFolder();
        _tokenizer = new ByteTokenizer(sentinelCount: 4);
        // Three shards of 7, 5 and 4 documents in row groups of 3: seven (file, row group) units of 1 to 3 rows.
        var all = SampleDocuments.Make(16, seed: 11);
        _files = [];
        _documents = [];
        var start = 0;
        foreach (var count in new[] { 7, 5, 4 })
        {
            var path = _temp.File($"shard-{_files.Count:D5}.parquet");
            ShardWriter.WriteFile(path, all.Skip(start).Take(count), RowGroupSize);
            _files.Add(path);
            _documents.AddRange(all.Skip(start).Take(count));
            start += count;
        }

        _epochTokens = _documents.Sum(d => _tokenizer.Encode(d.Text).Length + 1);
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    [TestCase(5)]
    [TestCase(64)]
    [TestCase(1000)]
    public void Next_AnyWindowLength_ReturnsWindowsOfExactlyThatLength(int windowLength)
    {
        using var stream = Open(windowLength, seed: 1);

        var windows = Take(stream, 2 * _epochTokens / windowLength + 3);

        Assert.That(windows.Select(w => w.Length), Has.All.EqualTo(windowLength));
    }

    [Test]
    public void Next_SameSeed_SameWindows()
    {
        using var first = Open(64, seed: 5);
        using var second = Open(64, seed: 5);

        Assert.That(Take(first, 150), Is.EqualTo(Take(second, 150)));
    }

    [Test]
    public void Next_DifferentSeed_DifferentOrder()
    {
        using var first = Open(64, seed: 5);
        using var second = Open(64, seed: 6);

        Assert.That(Take(first, 150), Is.Not.EqualTo(Take(second, 150)));
    }

    [TestCase(64)]
    [TestCase(1000)]
    public void Next_EachEpoch_CoversEveryDocumentExactlyOnce(int windowLength)
    {
        using var stream = Open(windowLength, seed: 2);
        var windowCount = 2 * _epochTokens / windowLength + 1;
        var tokens = Take(stream, windowCount).SelectMany(w => w).ToArray();

        var epoch0 = SplitDocuments(tokens[.._epochTokens]);
        var epoch1 = SplitDocuments(tokens[_epochTokens..(2 * _epochTokens)]);

        var texts = _documents.Select(d => d.Text).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(epoch0, Is.EquivalentTo(texts));
            Assert.That(epoch1, Is.EquivalentTo(texts));
            Assert.That(epoch0, Is.Not.EqualTo(texts), "shuffled units should not come in file order");
            Assert.That(epoch1, Is.Not.EqualTo(epoch0), "each epoch has its own unit order");
            Assert.That(stream.Cursor.Epoch, Is.EqualTo(2));
            Assert.That(stream.Cursor.ExamplesServed, Is.EqualTo(windowCount));
        });
    }

    [Test]
    public void Next_ShuffledEpoch_KeepsRowGroupsTogetherInTheirRowOrder()
    {
        using var stream = Open(64, seed: 9);
        var tokens = Take(stream, _epochTokens / 64 + 1).SelectMany(w => w).ToArray();

        var order = SplitDocuments(tokens[.._epochTokens]).Select(text => _documents.FindIndex(d => d.Text == text)).ToList();

        // Units are (file, row group): each run of consecutive file-order indices must be a whole row group.
        var groups = _documents.Select((_, i) => i).GroupBy(UnitOf).Select(g => g.ToList()).ToList();
        Assert.That(groups.Select(g => IndexOfRun(order, g)), Has.All.GreaterThanOrEqualTo(0));

        int UnitOf(int documentIndex) => documentIndex < 7 ? documentIndex / 3 : documentIndex < 12 ? 10 + (documentIndex - 7) / 3 : 20 + (documentIndex - 12) / 3;
    }

    [Test]
    public void Next_NoShuffle_ReadsFilesInOrder()
    {
        using var stream = Open(64, seed: 123, shuffle: false);
        var tokens = Take(stream, _epochTokens / 64 + 1).SelectMany(w => w).ToArray();

        Assert.That(SplitDocuments(tokens[.._epochTokens]), Is.EqualTo(_documents.Select(d => d.Text)));
    }

    [TestCase(64, 0)]
    [TestCase(64, 1)]
    [TestCase(64, 17)]
    [TestCase(5, 333)]
    [TestCase(1000, 2)]
    public void Resume_FromJsonCursorMidEpoch_ContinuesExactlyLikeTheUninterruptedStream(int windowLength, int served)
    {
        using var original = Open(windowLength, seed: 4);
        Take(original, served);
        var json = JsonSerializer.Serialize(original.Cursor);

        using var resumed = Open(windowLength, seed: 4, JsonSerializer.Deserialize<DataCursor>(json));
        var expected = Take(original, 2 * _epochTokens / windowLength + 2);
        var actual = Take(resumed, expected.Count);

        Assert.Multiple(() =>
        {
            Assert.That(actual, Is.EqualTo(expected));
            Assert.That(resumed.Cursor, Is.EqualTo(original.Cursor));
        });
    }

    [TestCase(64)]
    [TestCase(300)]
    public void Resume_AtEveryWindowOfTwoEpochs_MatchesTheUninterruptedStream(int windowLength)
    {
        var windowCount = 2 * _epochTokens / windowLength + 2;
        using var reference = Open(windowLength, seed: 21);
        var windows = new List<int[]>();
        var cursors = new List<DataCursor> { reference.Cursor };
        for (var i = 0; i < windowCount; i++)
        {
            windows.Add(reference.Next());
            cursors.Add(reference.Cursor);
        }

        var mismatches = new List<int>();
        for (var k = 0; k < windowCount; k++)
        {
            using var resumed = Open(windowLength, seed: 21, cursors[k]);
            var count = Math.Min(3, windowCount - k);
            if (!Take(resumed, count).SequenceEqual(windows.Skip(k).Take(count), new WindowComparer())) mismatches.Add(k);
        }

        Assert.Multiple(() =>
        {
            Assert.That(mismatches, Is.Empty, "resume points whose continuation differed");
            // Both ways a cursor can stand mid-stream were exercised: inside a long row, and with carried tokens.
            Assert.That(cursors, Has.Some.Matches<DataCursor>(c => c.TokenOffsetInRow > 0));
            Assert.That(cursors, Has.Some.Matches<DataCursor>(c => c.Carry.Length > 0));
            Assert.That(cursors[^1].Epoch, Is.GreaterThanOrEqualTo(2));
        });
    }

    [TestCase(64)]
    [TestCase(7)]
    public void Resume_JustBeforeEpochBoundary_ContinuesIntoTheNextEpochIdentically(int windowLength)
    {
        using var original = Open(windowLength, seed: 8);
        var lastFullWindowOfEpoch0 = _epochTokens / windowLength - 1;
        Take(original, lastFullWindowOfEpoch0);
        var cursor = original.Cursor;

        using var resumed = Open(windowLength, seed: 8, cursor);
        var expected = Take(original, 3);
        var actual = Take(resumed, 3);

        Assert.Multiple(() =>
        {
            Assert.That(cursor.Epoch, Is.EqualTo(0));
            Assert.That(original.Cursor.Epoch, Is.EqualTo(1), "the compared windows cross the epoch boundary");
            Assert.That(actual, Is.EqualTo(expected));
        });
    }

    [Test]
    public void Resume_InLaterRowGroup_ReadsOnlyWhatItNeeds()
    {
        using var original = Open(64, seed: 0, shuffle: false);
        // Serve past the first row group of the first file (3 documents), then break that row group's data pages.
        var firstGroupTokens = _documents.Take(3).Sum(d => _tokenizer.Encode(d.Text).Length + 1);
        Take(original, firstGroupTokens / 64 + 2);
        var cursor = original.Cursor;
        var expected = Take(original, 5);
        CorruptRowGroup(_files[0], rowGroup: 0);

        using var resumed = Open(64, seed: 0, cursor, shuffle: false);
        using var fresh = Open(64, seed: 0, shuffle: false);

        Assert.Multiple(() =>
        {
            Assert.That(cursor.UnitIndex, Is.GreaterThan(0));
            Assert.That(Take(resumed, 5), Is.EqualTo(expected));
            Assert.Throws<ShardFormatException>(() => fresh.Next(), "a stream that starts at the beginning does read it");
        });
    }

    [Test]
    public void Cursor_Json_RoundTripsToAnEqualValue()
    {
        using var stream = Open(64, seed: 3);
        Take(stream, 11);
        var cursor = stream.Cursor;

        var copy = JsonSerializer.Deserialize<DataCursor>(JsonSerializer.Serialize(cursor));

        Assert.That(copy, Is.EqualTo(cursor));
    }

    [Test]
    public void Constructor_CursorWithCarryAsLongAsTheWindow_ThrowsNamingTheField()
    {
        var cursor = DataCursor.Start with { Carry = new int[64] };

        var error = Assert.Throws<ArgumentException>(() => Open(64, seed: 0, cursor));

        Assert.That(error!.Message, Does.Contain("Carry"));
    }

    [Test]
    public void Constructor_CursorUnitBeyondTheFiles_ThrowsNamingTheField()
    {
        var cursor = DataCursor.Start with { UnitIndex = 7 };

        var error = Assert.Throws<ArgumentException>(() => Open(64, seed: 0, cursor));

        Assert.That(error!.Message, Does.Contain("UnitIndex"));
    }

    [Test]
    public void Next_FilesWithOnlyNullTexts_ThrowsInsteadOfLoopingForever()
    {
        var path = _temp.File("nulls.parquet");
        var text = new DataField<string>("text");
        Task.Run(async () =>
        {
            await using var file = File.Create(path);
            await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(text), file);
            using var group = writer.CreateRowGroup();
            await group.WriteAsync(text, new string?[] { null, null }!);
        }).GetAwaiter().GetResult();

        using var stream = new PackedExampleStream([path], _tokenizer, 8, seed: 0, shuffle: true);

        Assert.Throws<InvalidDataException>(() => stream.Next());
    }

    private PackedExampleStream Open(int windowLength, long seed, DataCursor? cursor = null, bool shuffle = true) =>
        new(_files, _tokenizer, windowLength, seed, shuffle, cursor);

    private static List<int[]> Take(PackedExampleStream stream, int count) =>
        Enumerable.Range(0, count).Select(_ => stream.Next()).ToList();

    // Splits a token run at EOS and decodes each document.
    private List<string> SplitDocuments(int[] tokens)
    {
        Assert.That(tokens[^1], Is.EqualTo(_tokenizer.Special.Eos), "an epoch ends with a document's EOS");
        var documents = new List<string>();
        var current = new List<int>();
        foreach (var id in tokens)
        {
            if (id == _tokenizer.Special.Eos)
            {
                documents.Add(_tokenizer.Decode(current));
                current.Clear();
            }
            else current.Add(id);
        }

        return documents;
    }

    private sealed class WindowComparer : IEqualityComparer<int[]>
    {
        public bool Equals(int[]? x, int[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(int[] window) => window.Length;
    }

    private static int IndexOfRun(List<int> sequence, List<int> run)
    {
        for (var i = 0; i + run.Count <= sequence.Count; i++)
            if (sequence.Skip(i).Take(run.Count).SequenceEqual(run)) return i;
        return -1;
    }

    private static void CorruptRowGroup(string path, int rowGroup)
    {
        var offset = Task.Run(async () =>
        {
            await using var reader = await ParquetReader.CreateAsync(path);
            return reader.Metadata!.RowGroups[rowGroup].Columns[0].MetaData!.DataPageOffset;
        }).GetAwaiter().GetResult();
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
        stream.Position = offset;
        stream.Write(Enumerable.Repeat((byte)0xFF, 32).ToArray());
    }
}
