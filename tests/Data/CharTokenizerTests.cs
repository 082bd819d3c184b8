using System.Text;
using NUnit.Framework;
using Training.Shared.Data;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Tests.Support;
using Training.Shared.Training;

namespace Training.Tests.Data;

/// <summary>The character-level tokenizer: its vocabulary from shards, its file, and its life with a trial.</summary>
public class CharTokenizerTests
{
    private TempDirectory dir = null!;

    [SetUp]
    public void SetUp() => dir = new TempDirectory();

    [TearDown]
    public void TearDown() => dir.Dispose();

    [Test]
    public void Build_Texts_CharactersOnceInCodePointOrderAfterTheSpecials()
    {
        var tokenizer = CharTokenizer.Build(["ba\u00e9", "c a\U0001F600b"], sentinelCount: 5);

        Assert.That(tokenizer.Characters, Is.EqualTo(new[] { " ", "a", "b", "c", "\u00e9", "\U0001F600" }));
        Assert.That(tokenizer.Encode("abc"), Is.EqualTo(new[] { 5, 6, 7 }));
        Assert.That((tokenizer.Special.Pad, tokenizer.Special.Bos, tokenizer.Special.Eos), Is.EqualTo((0, 1, 2)));
        Assert.That(tokenizer.VocabSize, Is.EqualTo(4 + 6 + 5));
        Assert.That(tokenizer.Special.Sentinel(0), Is.EqualTo(14));
    }

    [Test]
    public void EncodeDecode_TextOfKnownCharacters_RoundTripsOneIdPerCharacter()
    {
        var tokenizer = CharTokenizer.Build(["caf\u00e9 \U0001F600!"], 0);

        var ids = tokenizer.Encode("\U0001F600 caf\u00e9");

        Assert.That(ids, Has.Length.EqualTo(6), "a surrogate pair is one character");
        Assert.That(tokenizer.Decode(ids), Is.EqualTo("\U0001F600 caf\u00e9"));
    }

    [Test]
    public void Encode_CharacterNotInTheVocabulary_GivesUnknownWhichDecodesAsReplacement()
    {
        var tokenizer = CharTokenizer.Build(["ab"], 2);

        var ids = tokenizer.Encode("axb");

        Assert.That(ids, Is.EqualTo(new[] { 4, CharTokenizer.UnknownId, 5 }));
        Assert.That(tokenizer.Decode(ids.Append(tokenizer.Special.Eos).Append(tokenizer.Special.Sentinel(1))), Is.EqualTo("a\uFFFDb"));
    }

    [Test]
    public void FromShards_SameShardsInAnyOrder_GiveTheSameVocabulary()
    {
        TestCorpus.Write(dir.Path);
        var files = ShardFiles.Resolve([dir.Combine("train")], dir.Path);
        var texts = files.SelectMany(f =>
        {
            using var reader = new ShardReader(f);
            return reader.ReadAll().Select(d => d.Text).ToList();
        }).ToList();

        var forward = CharTokenizer.FromShards(files, 10);
        var backward = CharTokenizer.FromShards(files.Reverse().ToList(), 10);

        Assert.That(backward.Characters, Is.EqualTo(forward.Characters));
        // The corpus is ASCII: code-unit order is code-point order.
        Assert.That(forward.Characters, Is.EqualTo(texts.SelectMany(t => t).Distinct().Order().Select(c => c.ToString())));
        Assert.That(texts.All(t => forward.Decode(forward.Encode(t)) == t), Is.True);
    }

    [Test]
    public void FromJson_WhatToJsonWrote_IsTheSameTokenizer()
    {
        var tokenizer = CharTokenizer.Build(["x\"y\\z\n\t\U0001F600"], 3);

        var reread = CharTokenizer.FromJson(tokenizer.ToJson(), "vocab.json");

        Assert.That(reread.Characters, Is.EqualTo(tokenizer.Characters));
        Assert.That(reread.VocabSize, Is.EqualTo(tokenizer.VocabSize));
    }

    [TestCase("{\"kind\": \"byte\", \"sentinels\": 0, \"characters\": []}", "not a character vocabulary")]
    [TestCase("{\"kind\": \"char\", \"sentinels\": 0, \"characters\": [\"ab\"]}", "is not exactly one Unicode scalar value")]
    [TestCase("{\"kind\": \"char\", \"sentinels\": 0, \"characters\": [\"a\", \"a\"]}", "appears twice")]
    [TestCase("not json", "not a character vocabulary file")]
    public void FromJson_BadFile_NamesTheSourceAndTheProblem(string json, string problem)
    {
        var error = Assert.Throws<InvalidDataException>(() => CharTokenizer.FromJson(Encoding.UTF8.GetBytes(json), "runs/x/tokenizer.json"))!;

        Assert.That(error.Message, Does.StartWith("runs/x/tokenizer.json:").And.Contain(problem));
    }

    [Test]
    public void Create_CharByName_ExplainsWhereItsVocabularyComesFrom()
    {
        var error = Assert.Throws<ArgumentException>(() => Tokenizers.Create("char", 0))!;

        Assert.That(error.Message, Does.Contain("TokenizerFactory.ForSpec"));
        Assert.That(Tokenizers.Kinds, Does.Contain("char"));
    }

    private ExperimentSpec CharSpec(int sentinels = 4, int steps = 2) => ExperimentLoader.Load(WriteExperiment($"""
        name: chars
        seed: 5
        data:
          train: train
        tokenizer:
          kind: char
          sentinels: {sentinels}
        model:
          arch: gpt
          d_model: 16
          layers: 1
          heads: 2
        objective:
          kind: auto
          input_length: 16
        train:
          steps: {steps}
          global_batch: 2
          checkpoint_every: 1
          log_every: 1
        """));

    private string WriteExperiment(string yaml)
    {
        var path = dir.Combine($"experiment-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Test]
    public void ForTrial_SecondRunAfterTheShardsChanged_KeepsTheSavedVocabulary()
    {
        TestCorpus.Write(dir.Path);
        var spec = CharSpec();
        var blobs = new LocalFolderBlobStore(dir.Combine("run"));
        var first = (CharTokenizer)TrialComponents.TokenizerForTrial(spec, blobs, "trials/t0/checkpoints");
        ShardWriter.WriteFile(dir.Combine("train", "shard-99999.parquet"),
            [new FineWebDocument("Zebras \u00fcber Qu\u00e4rz", "new", "d", "u", "f", "en", 1, 3, 3, 3)], rowGroupSize: 10);

        var resumed = (CharTokenizer)TrialComponents.TokenizerForTrial(spec, blobs, "trials/t0/checkpoints");
        var rebuilt = (CharTokenizer)TrialComponents.Tokenizer(spec);

        Assert.That(File.Exists(dir.Combine("run", "trials", "t0", "checkpoints", TokenizerFactory.VocabularyBlob)), Is.True);
        Assert.That(resumed.Characters, Is.EqualTo(first.Characters), "a resumed trial reads its saved vocabulary");
        Assert.That(rebuilt.Characters, Does.Contain("\u00fc").And.Not.EquivalentTo(first.Characters), "the shards did change");
    }

    [Test]
    public void ForTrial_SavedVocabularyWithOtherSentinels_ThrowsNamingTheFile()
    {
        TestCorpus.Write(dir.Path);
        var blobs = new LocalFolderBlobStore(dir.Combine("run"));
        TrialComponents.TokenizerForTrial(CharSpec(sentinels: 4), blobs, "ck");

        var error = Assert.Throws<InvalidDataException>(() => TrialComponents.TokenizerForTrial(CharSpec(sentinels: 6), blobs, "ck"))!;

        Assert.That(error.Message, Does.Contain("tokenizer.json").And.Contain("reserves 4 sentinels").And.Contain("tokenizer.sentinels is 6"));
    }

    [Test]
    public void Trainer_CharTrialStoppedAndResumed_TrainsOnTheSavedVocabulary()
    {
        TestCorpus.Write(dir.Path);
        var trial = TrialComponents.Expand(CharSpec(steps: 3))[0];
        var blobs = new LocalFolderBlobStore(dir.Combine("run"));
        var events = new List<TrainingEvent>();
        void Run(Func<bool>? stop) => TorchThread.Run("char-trainer", () =>
        {
            using var trainer = new Trainer(new TrainerOptions(trial, blobs, "ck", e => { lock (events) events.Add(e); }, stop));
            return trainer.Run();
        }).GetAwaiter().GetResult();

        Run(stop: () => events.OfType<StepMetrics>().Any());
        Run(stop: null);

        var vocabulary = CharTokenizer.FromJson(File.ReadAllBytes(dir.Combine("run", "ck", TokenizerFactory.VocabularyBlob)), "saved");
        Assert.That(events.OfType<TrialStarted>().Last().ResumedFrom, Is.EqualTo("step-00000001"));
        Assert.That(events.OfType<StepMetrics>().Select(m => m.Step), Is.EqualTo(new long[] { 1, 2, 3 }));
        Assert.That(events.OfType<StepMetrics>().All(m => double.IsFinite(m.Loss) && m.Loss < Math.Log(vocabulary.VocabSize) + 1), Is.True);
    }
}
