using NUnit.Framework;
using Training.Shared.Data;
using Training.Tests.Support;

namespace Training.Tests.Data;

/// <summary>Task shards (prompt/target parquet), the task example stream, JSONL import and the synthetic tasks.</summary>
public sealed class TaskShardTests
{
    private static IReadOnlyList<IShardSource> WriteShards(string folder, int files, int rows, int rowGroup)
    {
        var sources = new List<IShardSource>();
        for (var f = 0; f < files; f++)
        {
            var path = Path.Combine(folder, $"shard-{f:D5}.parquet");
            TaskShardWriter.WriteFile(path, Enumerable.Range(0, rows).Select(i => new TaskExample($"{f}-{i}", $"p{f}-{i}", $"t{f}-{i}")), rowGroup);
            sources.Add(new LocalShardSource(path));
        }
        return sources;
    }

    [Test]
    public void TaskShard_RoundTrips_AndIsToldApartFromTextShards()
    {
        using var dir = new TempDirectory();
        var sources = WriteShards(dir.Path, 1, 25, 10);
        using var reader = sources[0].Open();
        reader.CheckLayout();

        Assert.That(reader.IsTaskShard, Is.True);
        Assert.That(reader.RowGroupCount, Is.EqualTo(3));
        Assert.That(TaskShards.ReadAll(sources).Select(e => (e.Id, e.Prompt, e.Target)),
            Is.EqualTo(Enumerable.Range(0, 25).Select(i => ($"0-{i}", $"p0-{i}", $"t0-{i}"))));
        var error = Assert.Throws<ShardFormatException>(() => reader.ReadRowGroup(0))!;
        Assert.That(error.Message, Does.Contain("is a task shard").And.Contain("text"));

        var text = dir.Combine("text.parquet");
        ShardWriter.WriteFile(text, [FineWebDocument.FromText("hello")], 10);
        var wrongKind = Assert.Throws<ShardFormatException>(() => _ = new TaskExampleStream([new LocalShardSource(text)], 1, shuffle: true))!;
        Assert.That(wrongKind.Message, Does.Contain(text).And.Contain("prompt").And.Contain("target"));
        Assert.That(ShardFiles.Check(sources, ShardCheckDepth.Full).Problems, Is.Empty, "the full check reads task row groups too");
    }

    [Test]
    public void Stream_VisitsEveryExampleOncePerEpoch_InASeededOrder_AndResumesExactlyFromItsCursor()
    {
        using var dir = new TempDirectory();
        var sources = WriteShards(dir.Path, 2, 30, 10);
        List<string> Take(TaskExampleStream s, int n) => Enumerable.Range(0, n).Select(_ => s.Next().Id).ToList();

        using var stream = new TaskExampleStream(sources, seed: 4, shuffle: true);
        var epoch = Take(stream, 60);
        Assert.That(epoch.Distinct().Count(), Is.EqualTo(60), "one epoch serves every example once");
        Assert.That(epoch, Is.Not.EqualTo(epoch.Order(StringComparer.Ordinal).ToList()), "shuffled");
        var cursor = stream.Cursor;
        var next = Take(stream, 35);

        using var resumed = new TaskExampleStream(sources, seed: 4, shuffle: true, resumeFrom: cursor);
        Assert.That(Take(resumed, 35), Is.EqualTo(next));
        using var again = new TaskExampleStream(sources, seed: 4, shuffle: true);
        Assert.That(Take(again, 60), Is.EqualTo(epoch), "a pure function of (files, seed, index)");
        using var other = new TaskExampleStream(sources, seed: 5, shuffle: true);
        Assert.That(Take(other, 60), Is.Not.EqualTo(epoch));
        Assert.That(next.Take(25).Distinct().Count(), Is.EqualTo(25), "the second epoch is a new permutation of every example");
    }

    [Test]
    public void JsonlImport_WritesTrainAndHeldOut_AndABadLineNamesTheFileAndLine()
    {
        using var dir = new TempDirectory();
        var jsonl = dir.Combine("pairs.jsonl");
        File.WriteAllLines(jsonl, Enumerable.Range(0, 20).Select(i => $$"""{"prompt": "q{{i}}", "target": "a{{i}}"}"""));
        var (train, eval) = TaskImporter.Split(TaskImporter.ReadJsonl(jsonl), 0.25, seed: 3);
        var result = TaskImporter.Write(train, eval, dir.Combine("out"), rowsPerShard: 8);

        Assert.That((result.Train, result.Eval), Is.EqualTo((15, 5)));
        var all = TaskShards.ReadAll(Directory.GetFiles(dir.Combine("out"), "*.parquet", SearchOption.AllDirectories)
            .Select(f => (IShardSource)new LocalShardSource(f)).ToList());
        Assert.That(all.Select(e => e.Prompt).Order(), Is.EqualTo(Enumerable.Range(0, 20).Select(i => $"q{i}").Order()));

        File.AppendAllText(jsonl, "{\"prompt\": \"q\", \"target\": 7}\n");
        var error = Assert.Throws<InvalidDataException>(() => TaskImporter.ReadJsonl(jsonl))!;
        Assert.That(error.Message, Does.Contain($"{jsonl}:21").And.Contain("\"target\" must be a string"));
    }

    [Test]
    public void SyntheticTasks_AreCorrect_Seeded_AndHeldOutPromptsNeverOccurInTrain()
    {
        var heldOut = SyntheticTasks.Generate("reverse", 200, seed: 12);
        var train = SyntheticTasks.Generate("reverse", 2000, seed: 11, heldOut.Select(e => e.Prompt).ToHashSet());

        Assert.That(train.All(e => e.Target == new string(e.Prompt["reverse: ".Length..].Reverse().ToArray())), Is.True);
        Assert.That(train.Select(e => e.Prompt).Intersect(heldOut.Select(e => e.Prompt)), Is.Empty);
        Assert.That(SyntheticTasks.Generate("reverse", 50, seed: 11).Select(e => e.Prompt), Is.EqualTo(train.Take(50).Select(e => e.Prompt)));
        Assert.That(SyntheticTasks.Generate("add", 20, seed: 1).All(e => e.Target == e.Prompt[5..].Split('+').Sum(int.Parse).ToString()), Is.True);
        Assert.That(SyntheticTasks.Generate("sort", 20, seed: 1).All(e => e.Target == new string(e.Prompt[6..].Order().ToArray())), Is.True);
        Assert.That(Assert.Throws<ArgumentException>(() => SyntheticTasks.Generate("copy", 1, 1))!.Message, Does.Contain("reverse, sort, add"));
    }
}
