using Training.Shared.Data;
using Training.Shared.Objectives;
using Training.Shared.Models;
using NUnit.Framework;
using Training.Shared.Spec;

namespace Training.Tests.Spec;

[TestFixture]
public sealed class ExperimentLoaderTests
{
    private SpecFixture fixture = null!;

    [SetUp]
    public void SetUp() => fixture = new SpecFixture();

    [TearDown]
    public void TearDown() => fixture.Dispose();

    [Test]
    public void Load_FullFile_ReadsEveryValue()
    {
        var path = fixture.WriteYaml(SpecFixture.FullYaml);

        var spec = ExperimentLoader.Load(path);

        Assert.That(spec.Name, Is.EqualTo("quickstart"));
        Assert.That(spec.Seed, Is.EqualTo(1234));
        Assert.That(spec.SourceFile, Is.EqualTo(Path.GetFullPath(path)));
        Assert.That(spec.Data.Train, Is.EqualTo(new[] { fixture.PathOf("data/train") }));
        Assert.That(spec.Data.Eval, Is.EqualTo(new[] { fixture.PathOf("data/eval/*.parquet") }));
        Assert.That(spec.Tokenizer, Is.EqualTo(new TokenizerSpec(TokenizerKind.Cl100k, 50)));
        Assert.That(spec.Model, Is.EqualTo(new TransformerConfig(VocabSize: 0, DModel: 192, EncoderLayers: 4,
            DecoderLayers: 2, Heads: 6, KvHeads: 3, HeadDim: 32, FfnDim: 768, MlpKind.SwiGlu,
            Dropout: 0.05, RopeTheta: 50000, NormEps: 1e-5) { Architecture = ModelArchitecture.EncoderDecoder }));
        Assert.That(spec.Objective, Is.EqualTo(new ObjectiveSpec(ObjectiveKind.SpanCorruption, 96, 0.2, 2.5)));
        Assert.That(spec.Optimizer, Is.EqualTo(new OptimizerSpec(OptimizerKind.AdamW, 1e-3, 0.85, 0.98, 1e-7, 0.05, 0.5)));
        Assert.That(spec.Schedule, Is.EqualTo(new ScheduleSpec(ScheduleKind.Wsd, 20, 0.05, 0.3)));
        Assert.That(spec.Train, Is.EqualTo(new TrainSpec(300, 32, 8, 50, 2, 100, 2, 5)));
        Assert.That(spec.Resources, Is.EqualTo(new ResourcesSpec(2, 3, "cuda:1", 2)));
        Assert.That(spec.Sweep, Is.Null);
    }

    [Test]
    public void Load_MinimalFile_FillsDocumentedDefaults()
    {
        var spec = ExperimentLoader.Load(fixture.WriteYaml(SpecFixture.MinimalYaml));

        Assert.That(spec.Seed, Is.EqualTo(0));
        Assert.That(spec.Data.Train, Is.EqualTo(new[] { fixture.PathOf("data/train") }));
        Assert.That(spec.Data.Eval, Is.Empty);
        Assert.That(spec.Tokenizer, Is.EqualTo(new TokenizerSpec(TokenizerKind.Byte, 100)));
        Assert.That(spec.Model, Is.EqualTo(new TransformerConfig(VocabSize: 0, DModel: 256, EncoderLayers: 4,
            DecoderLayers: 2, Heads: 4, KvHeads: 4, HeadDim: 64, FfnDim: 1024, MlpKind.GeluTanh,
            Dropout: 0.1, RopeTheta: 10000, NormEps: 1e-6) { Architecture = ModelArchitecture.EncoderDecoder }));
        Assert.That(spec.Objective, Is.EqualTo(new ObjectiveSpec(ObjectiveKind.SpanCorruption, 128, 0.15, 3.0)));
        Assert.That(spec.Optimizer, Is.EqualTo(new OptimizerSpec(OptimizerKind.AdamW, 3e-4, 0.9, 0.999, 1e-8, 0.01, 1.0)));
        Assert.That(spec.Schedule, Is.EqualTo(new ScheduleSpec(ScheduleKind.Cosine, 0, 0.1, 0.2)));
        Assert.That(spec.Train, Is.EqualTo(new TrainSpec(100, 16, 16, 0, 4, 0, 3, 10)));
        Assert.That(spec.Resources, Is.EqualTo(new ResourcesSpec(1, 1, "cpu", 1)));
    }

    [Test]
    public void Parse_DecoderOnly_PutsAllLayersInTheDecoder()
    {
        var spec = Parse("""
            name: gpt
            data: {train: data/train}
            model: {arch: decoder-only, layers: 4}
            objective: {kind: clm}
            """);

        Assert.That((spec.Model.Layers, spec.Model.EncoderLayers, spec.Model.DecoderLayers), Is.EqualTo((4, 0, 4)));
    }

    [TestCase(9, 0.667, 6, 3)]
    [TestCase(30, 0.667, 20, 10)]
    [TestCase(4, 0.5, 2, 2)]
    public void Parse_LayersWithEncoderFraction_SplitsByRoundedFraction(int layers, double fraction, int encoder, int decoder)
    {
        var spec = Parse($"""
            name: split
            data: {"{"}train: data/train{"}"}
            model:
              arch: encoder-decoder
              layers: {layers}
              encoder_fraction: {fraction.ToString(System.Globalization.CultureInfo.InvariantCulture)}
            objective: {"{"}kind: span-corruption{"}"}
            """);

        Assert.That((spec.Model.EncoderLayers, spec.Model.DecoderLayers, spec.Model.EncoderFraction), Is.EqualTo((encoder, decoder, fraction)));
    }

    [Test]
    public void Parse_UnknownKey_SuggestsNearestKey()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
              d_modle: 128
            objective:
              kind: span-corruption
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 6, token: "d_modle", key: "model.d_modle");
        Assert.That(error.Message, Does.Contain("did you mean \"d_model\"?"));
        Assert.That(error.Message, Does.Contain("allowed keys in model: arch, d_model,"));
    }

    [Test]
    public void Parse_KeyInWrongSection_SuggestsTheRightSection()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
              lr: 1.0e-3
            objective:
              kind: span-corruption
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 6, token: "lr", key: "model.lr");
        Assert.That(error.Message, Does.Contain("did you mean optimizer.lr?"));
    }

    [TestCase("d_model: abc", "model.d_model", "expected an integer >= 1, got \"abc\"")]
    [TestCase("d_model: 2.5", "model.d_model", "expected an integer >= 1, got \"2.5\"")]
    [TestCase("d_model: \"256\"", "model.d_model", "expected an integer >= 1, got \"256\" (a quoted string)")]
    [TestCase("dropout: high", "model.dropout", "expected a number in [0, 1), got \"high\"")]
    [TestCase("heads: [4, 8]", "model.heads", "expected an integer >= 1, got a list")]
    [TestCase("heads:", "model.heads", "has no value: expected an integer >= 1")]
    public void Parse_WrongType_NamesTheExpectedType(string line, string key, string message)
    {
        var yaml = WithLastLine("model", line);

        var error = SingleError(yaml);

        Assert.That((error.Line, error.Key), Is.EqualTo((LineCount(yaml), key)));
        Assert.That(error.Message, Does.Contain(message));
    }

    [TestCase("model", "dropout: 1.5", "model.dropout", "1.5 is out of range: expected a number in [0, 1)")]
    [TestCase("model", "d_model: 0", "model.d_model", "0 is out of range: expected an integer >= 1")]
    [TestCase("tokenizer", "sentinels: 1001", "tokenizer.sentinels", "1001 is out of range: expected an integer in [0, 1000]")]
    [TestCase("optimizer", "lr: -1.0e-3", "optimizer.lr", "-0.001 is out of range: expected a number > 0")]
    [TestCase("objective", "input_length: 4", "objective.input_length", "4 is out of range: expected an integer >= 8")]
    [TestCase("resources", "device: gpu", "resources.device", "\"gpu\" is not valid: expected cpu, cuda or cuda:N")]
    [TestCase("model", "d_model: 2000000000", "model.d_model", "2000000000 is out of range: expected an integer >= 1, at most 65536")]
    [TestCase("train", "steps: 3000000000", "train.steps", "3000000000 is out of range: expected an integer >= 0, at most 2147483647")]
    [TestCase("train", "steps: 99999999999999999999999", "train.steps", "99999999999999999999999 is out of range: expected an integer >= 0, at most 2147483647")]
    [TestCase("model", "heads: 5000", "model.heads", "5000 is out of range: expected an integer >= 1, at most 1024")]
    public void Parse_OutOfRange_NamesTheAllowedRange(string section, string line, string key, string message)
    {
        var yaml = WithLastLine(section, line);

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: LineCount(yaml), token: line[(line.IndexOf(':') + 2)..], key: key);
        Assert.That(error.Message, Does.Contain(message));
    }

    [Test]
    public void Parse_BadEnumValue_ListsAllowedValues()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
              mlp: relu
            objective:
              kind: span-corruption
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 6, token: "relu", key: "model.mlp");
        Assert.That(error.Message, Does.Contain("unknown value \"relu\"").And.Contain("allowed: gelu, swiglu"));
    }

    [Test]
    public void Parse_BadEnumNearMiss_SuggestsTheValue()
    {
        var error = SingleError(SpecFixture.MinimalYaml.Replace("span-corruption", "span_corruption"));

        Assert.That(error.Key, Is.EqualTo("objective.kind"));
        Assert.That(error.Message, Does.Contain("did you mean \"span-corruption\"?").And.Contain("allowed: span-corruption, clm"));
    }

    [Test]
    public void Parse_LayerSplitNotAddingUp_ReportsAtLayers()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
              layers: 6
              encoder_layers: 4
              decoder_layers: 3
            objective:
              kind: span-corruption
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 6, token: "6", key: "model.layers");
        Assert.That(error.Message, Does.Contain("does not add up").And.Contain("encoder_layers (4) + decoder_layers (3) = 7"));
    }

    [Test]
    public void Parse_FractionLeavingNoDecoderLayers_ReportsAtFraction()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
              layers: 2
              encoder_fraction: 0.9
            objective:
              kind: span-corruption
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 7, token: "0.9", key: "model.encoder_fraction");
        Assert.That(error.Message, Does.Contain("2 encoder and 0 decoder layers").And.Contain(">= 1"));
    }

    [Test]
    public void Parse_OnlyEncoderLayers_AsksForACompleteSplit()
    {
        var error = SingleError(SpecFixture.MinimalYaml.Replace("arch: encoder-decoder", "arch: encoder-decoder\n  encoder_layers: 4"));

        Assert.That((error.Line, error.Key), Is.EqualTo((6, "model.encoder_layers")));
        Assert.That(error.Message, Does.Contain("encoder_layers + decoder_layers, or layers + encoder_fraction"));
    }

    [Test]
    public void Parse_KvHeadsNotDividingHeads_ReportsAtKvHeads()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
              heads: 4
              kv_heads: 3
            objective:
              kind: span-corruption
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 7, token: "3", key: "model.kv_heads");
        Assert.That(error.Message, Does.Contain("kv_heads (3) must divide heads (4)"));
    }

    [Test]
    public void Parse_GlobalBatchNotDivisibleByMicroBatchTimesWorkers_ReportsAtMicroBatch()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
            objective:
              kind: span-corruption
            train:
              global_batch: 16
              micro_batch: 4
            resources:
              workers: 3
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 10, token: "4", key: "train.micro_batch");
        Assert.That(error.Message, Does.Contain("global_batch (16) must be divisible by micro_batch (4) * resources.workers (3) = 12"));
    }

    [Test]
    public void Parse_MinWorkersThatCannotSplitTheBatch_ReportsAtMinWorkers()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
            objective:
              kind: span-corruption
            train:
              global_batch: 12
              micro_batch: 3
            resources:
              workers: 4
              min_workers: 3
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 13, token: "3", key: "resources.min_workers");
        Assert.That(error.Message, Does.Contain("with 3 workers (min_workers 3 .. workers 4) global_batch (12) must be divisible by micro_batch (3) * 3 = 9"));
    }

    [Test]
    public void Parse_MinWorkers_IsKeptAndRoundTrips()
    {
        var spec = ExperimentLoader.Parse("""
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
            objective:
              kind: span-corruption
            train:
              global_batch: 24
              micro_batch: 2
            resources:
              workers: 4
              min_workers: 2
            """, "elastic.yaml");
        Assert.That(spec.Resources.MinimumWorkers, Is.EqualTo(2));
        Assert.That(ExperimentLoader.Parse(SpecWriter.ToYaml(spec), "elastic.yaml").Resources, Is.EqualTo(spec.Resources));
    }

    [Test]
    public void Parse_SpanCorruptionWithDecoderOnly_ReportsAtObjectiveKind()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: decoder-only
            objective:
              kind: span-corruption
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 7, token: "span-corruption", key: "objective.kind");
        Assert.That(error.Message, Does.Contain("span-corruption requires model.arch encoder-decoder, but model.arch is decoder-only"));
    }

    [Test]
    public void Parse_ClmWithEncoderDecoder_ReportsAtObjectiveKind()
    {
        var error = SingleError(SpecFixture.MinimalYaml.Replace("span-corruption", "clm"));

        Assert.That((error.Line, error.Key), Is.EqualTo((7, "objective.kind")));
        Assert.That(error.Message, Does.Contain("clm requires model.arch decoder-only"));
    }

    [Test]
    public void Parse_TooFewSentinelsForTheSpans_ReportsAtSentinels()
    {
        var error = SingleError(SpecFixture.MinimalYaml + "\ntokenizer:\n  sentinels: 5\n");

        Assert.That((error.Line, error.Key), Is.EqualTo((9, "tokenizer.sentinels")));
        // input 128, density 0.15, mean span 3: raw length 141, 21 noise tokens, 7 spans.
        Assert.That(error.Message, Does.Contain("needs 7 sentinels per example, but tokenizer.sentinels is 5"));
    }

    [TestCase(27, false)]
    [TestCase(28, true)]
    public void Parse_NanoT5SpanSetting_NeedsTwentyEightSentinels(int sentinels, bool valid)
    {
        // SPEC.md: input 512, density 0.15, mean span 3 -> raw length 568, 85 noise tokens, 28 spans.
        var yaml = SpecFixture.MinimalYaml.Replace("kind: span-corruption", "kind: span-corruption\n  input_length: 512")
                   + $"\ntokenizer:\n  sentinels: {sentinels}\n";

        if (valid)
            Assert.That(ExperimentLoader.Parse(yaml, FilePath).Tokenizer.Sentinels, Is.EqualTo(28));
        else
            Assert.That(SingleError(yaml).Message, Does.Contain("needs 28 sentinels per example"));
    }

    [Test]
    public void Parse_WarmupNotBelowSteps_ReportsAtWarmup()
    {
        var error = SingleError(SpecFixture.MinimalYaml + "\nschedule:\n  warmup_steps: 100\ntrain:\n  steps: 100\n");

        Assert.That((error.Line, error.Key), Is.EqualTo((9, "schedule.warmup_steps")));
        Assert.That(error.Message, Does.Contain("warmup_steps (100) must be < train.steps (100)"));
    }

    [Test]
    public void Parse_SentencePieceTokenizer_ResolvesItsPathAgainstTheFile()
    {
        var spec = ExperimentLoader.Parse(SpecFixture.MinimalYaml + "\ntokenizer:\n  kind: sentencepiece\n  path: tok/spiece.model\n  pad_vocab_to: 128\n", FilePath);

        Assert.That(spec.Tokenizer, Is.EqualTo(new TokenizerSpec(TokenizerKind.SentencePiece, 100,
            Path.GetFullPath(Path.Combine(Path.GetDirectoryName(FilePath)!, "tok/spiece.model")), 128)));
    }

    [TestCase("kind: sentencepiece", "tokenizer.kind", "tokenizer.kind sentencepiece needs tokenizer.path")]
    [TestCase("kind: byte\n  path: spiece.model", "tokenizer.path", "tokenizer.path is the file of a sentencepiece or bpe tokenizer; tokenizer.kind byte takes none")]
    [TestCase("kind: cl100k\n  pad_vocab_to: 64", "tokenizer.pad_vocab_to", "tokenizer.pad_vocab_to pads a sentencepiece or bpe vocabulary")]
    public void Parse_SentencePieceKeysWithTheWrongKind_AreErrors(string body, string key, string message)
    {
        var error = SingleError(SpecFixture.MinimalYaml + "\ntokenizer:\n  " + body + "\n");

        Assert.That(error.Key, Is.EqualTo(key));
        Assert.That(error.Message, Does.Contain(message));
    }

    [Test]
    public void Parse_ZeroStepsWithEvalData_IsAnEvalOnlyTrialThatIgnoresWarmup()
    {
        var spec = ExperimentLoader.Parse(SpecFixture.MinimalYaml.Replace("train: data/train", "train: data/train\n  eval: data/eval")
            + "\nschedule:\n  warmup_steps: 10\ntrain:\n  steps: 0\n", FilePath);

        Assert.That((spec.Train.Steps, spec.Schedule.WarmupSteps), Is.EqualTo((0, 10)));
    }

    [Test]
    public void Parse_ZeroStepsWithoutEvalData_ReportsAtSteps()
    {
        var error = SingleError(SpecFixture.MinimalYaml + "\ntrain:\n  steps: 0\n");

        Assert.That((error.Line, error.Key), Is.EqualTo((9, "train.steps")));
        Assert.That(error.Message, Does.Contain("train.steps 0 only evaluates, so it needs data.eval"));
    }

    [Test]
    public void Parse_MissingRequiredKeys_ReportsEachAtItsSection()
    {
        var errors = Errors("""
            data:
              eval: data/eval
            model:
              d_model: 64
            """);

        Assert.That(errors.Select(e => (e.Key, e.Line)), Is.EquivalentTo(new[]
        {
            ("name", 1), ("data.train", 1), ("model.arch", 3), ("objective.kind", 1),
        }));
        Assert.That(errors.Single(e => e.Key == "model.arch").Message,
            Is.EqualTo("required key is missing: expected one of: encoder-decoder, decoder-only, gpt, parallel-gpt, lc-gpt, cc-gpt, encoder-only, ettin-decoder"));
    }

    [Test]
    public void Parse_YamlSyntaxError_ReportsTheParserPosition()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
             model: x
            """;

        var error = SingleError(yaml);

        Assert.That((error.File, error.Line, error.Column, error.Key), Is.EqualTo((FilePath, 4, 2, "(syntax)")));
        Assert.That(error.Message, Does.StartWith("YAML syntax error: "));
    }

    [Test]
    public void Parse_UnclosedFlowList_ReportsASyntaxError()
    {
        var error = SingleError("name: mini\ndata:\n  train: [a, b\nmodel:\n  arch: encoder-decoder\n");

        Assert.That(error.Key, Is.EqualTo("(syntax)"));
        Assert.That(error.Line, Is.GreaterThanOrEqualTo(3));
        Assert.That(error.Message, Does.StartWith("YAML syntax error: "));
    }

    [Test]
    public void Parse_DuplicateKey_ReportsTheSecondOne()
    {
        var error = SingleError(SpecFixture.MinimalYaml + "\nname: other\n");

        Assert.That((error.Line, error.Column, error.Key), Is.EqualTo((8, 1, "(syntax)")));
        Assert.That(error.Message, Does.Contain("Duplicate key"));
    }

    [Test]
    public void Parse_EmptyFile_SaysWhatIsNeeded()
    {
        var error = SingleError("# nothing yet\n");

        Assert.That((error.Line, error.Key), Is.EqualTo((1, "(file)")));
        Assert.That(error.Message, Does.Contain("name, data.train, model.arch and objective.kind"));
    }

    [Test]
    public void Parse_SeveralErrors_ReportsAllTogetherInFileOrder()
    {
        const string yaml = """
            name: Bad Name
            data:
              train: data/train
            model:
              arch: encoder-decoder
              d_model: -1
              mpl: gelu
            objective:
              kind: span-corruption
            train:
              steps: 0
            """;

        var exception = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(yaml, FilePath))!;

        Assert.That(exception.Errors.Select(e => (e.Line, e.Key)), Is.EqualTo(new[]
        {
            (1, "name"), (6, "model.d_model"), (7, "model.mpl"), (11, "train.steps"),
        }));
        Assert.That(exception.Message.Split('\n'), Is.EqualTo(exception.Errors.Select(e => e.ToString())));
        Assert.That(exception.Errors.Select(e => e.File), Is.All.EqualTo(FilePath));
    }

    [Test]
    public void Load_MissingDataFiles_ReportsEachListItemAtItsLine()
    {
        Directory.CreateDirectory(fixture.PathOf("data/empty-dir"));
        const string yaml = """
            name: mini
            data:
              train:
                - data/train
                - data/missing/*.parquet
                - data/empty-dir
                - data/nope.parquet
              eval: data/eval/shard-000.parquet
            model:
              arch: encoder-decoder
            objective:
              kind: span-corruption
            """;
        var path = fixture.WriteYaml(yaml);

        var exception = Assert.Throws<SpecException>(() => ExperimentLoader.Load(path))!;

        Assert.That(exception.Errors.Select(e => (e.File, e.Line, e.Column, e.Key)), Is.EqualTo(new[]
        {
            (path, 5, 7, "data.train[1]"), (path, 6, 7, "data.train[2]"), (path, 7, 7, "data.train[3]"),
        }));
        Assert.That(exception.Errors[0].Message, Does.Contain("no file matches the glob " + fixture.PathOf("data/missing/*.parquet")));
        Assert.That(exception.Errors[1].Message, Does.Contain("holds no *.parquet files"));
        Assert.That(exception.Errors[2].Message, Does.Contain("no such file or directory: " + fixture.PathOf("data/nope.parquet")));
    }

    [Test]
    public void Load_GlobPatterns_MatchFilesAtAnyDepth()
    {
        fixture.CreateFile("data/nested/a/b/deep.parquet");
        var path = fixture.WriteYaml(SpecFixture.MinimalYaml.Replace(
            "train: data/train",
            "train: [data/**/deep.parquet, data/train/shard-00?.parquet, data/nested/**, data/*/shard-001.parquet]"));

        var spec = ExperimentLoader.Load(path);

        Assert.That(spec.Data.Train, Has.Count.EqualTo(4));
        Assert.That(spec.Data.Train[0], Is.EqualTo(fixture.PathOf("data/**/deep.parquet")));
    }

    [Test]
    public void Load_GlobMatchingNoFile_Reports()
    {
        var path = fixture.WriteYaml(SpecFixture.MinimalYaml.Replace("train: data/train", "train: data/train/*.txt"));

        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Load(path))!.Errors.Single();

        Assert.That((error.Line, error.Column, error.Key), Is.EqualTo((3, 10, "data.train")));
    }

    [Test]
    public void Load_MissingYamlFile_ReportsTheFile()
    {
        var path = fixture.PathOf("absent.yaml");

        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Load(path))!.Errors.Single();

        Assert.That((error.File, error.Key), Is.EqualTo((path, "(file)")));
    }

    [Test]
    public void SpecError_ToString_IsFileLineColumnKeyMessage()
    {
        var error = new SpecError("x.yaml", 3, 12, "model.d_model", "expected an integer >= 1, got \"abc\"");

        Assert.That(error.ToString(), Is.EqualTo("x.yaml:3:12: model.d_model: expected an integer >= 1, got \"abc\""));
    }

    [Test]
    public void Parse_UnknownSweepKey_ListsNearestAllowedKeys()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
            objective:
              kind: span-corruption
            sweep:
              grid:
                model.dmodel: [128, 256]
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 10, token: "model.dmodel", key: "sweep.grid.model.dmodel");
        Assert.That(error.Message, Does.Contain("unknown sweep key \"model.dmodel\"; nearest allowed keys: model.d_model,"));
    }

    [Test]
    public void Parse_SweepOfTheSeed_GivesOneTrialPerSeed_AndTheNameStaysFixed()
    {
        // Seed replicates: the same configuration trained from several seeds, to report a mean and a spread.
        var trials = global::Training.Shared.Training.TrialComponents.Expand(ExperimentLoader.Parse(SpecFixture.MinimalYaml + "\nsweep:\n  grid:\n    seed: [1, 2]\n", "seeds.yaml"));
        Assert.That(trials.Select(t => t.Spec.Seed), Is.EqualTo(new long[] { 1, 2 }));

        var error = SingleError(SpecFixture.MinimalYaml + "\nsweep:\n  grid:\n    name: [a, b]\n");
        Assert.That((error.Line, error.Key), Is.EqualTo((10, "sweep.grid.name")));
        Assert.That(error.Message, Does.Contain("name cannot be swept"));
    }

    [Test]
    public void Parse_SweepGridValueOutOfRange_ReportsAtTheValue()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
            objective:
              kind: span-corruption
            sweep:
              grid:
                model.dropout: [0.1, 1.5]
            """;

        var error = SingleError(yaml);

        AssertAt(error, yaml, line: 10, token: "1.5", key: "sweep.grid.model.dropout[1]");
        Assert.That(error.Message, Does.Contain("1.5 is out of range: expected a number in [0, 1)"));
    }

    [TestCase("model.d_model: {uniform: [64, 256]}", "uniform does not fit model.d_model, which takes an integer >= 1; use int_uniform or choice")]
    [TestCase("optimizer.lr: {log_uniform: [0.0, 1.0e-3]}", "log_uniform needs low > 0")]
    [TestCase("optimizer.lr: {uniform: [1.0e-3, 1.0e-4]}", "low (0.001) must be <= high (0.0001)")]
    [TestCase("optimizer.lr: {normal: [0.0, 1.0]}", "unknown distribution \"normal\"")]
    [TestCase("model.mlp: {choice: [gelu, relu]}", "unknown value \"relu\"")]
    public void Parse_BadRandomParam_ReportsAtTheParam(string param, string message)
    {
        var yaml = SpecFixture.MinimalYaml + $"\nsweep:\n  random:\n    samples: 2\n    params:\n      {param}\n";

        var error = SingleError(yaml);

        Assert.That(error.Line, Is.EqualTo(12));
        Assert.That(error.Key, Does.StartWith("sweep.random.params." + param[..param.IndexOf(':')]));
        Assert.That(error.Message, Does.Contain(message));
    }

    [Test]
    public void Parse_KeyInGridAndRandom_IsRejected()
    {
        var yaml = SpecFixture.MinimalYaml +
                   "\nsweep:\n  grid:\n    optimizer.lr: [1.0e-3]\n  random:\n    samples: 2\n    params:\n      optimizer.lr: {uniform: [1.0e-4, 1.0e-3]}\n";

        var error = SingleError(yaml);

        Assert.That((error.Line, error.Key), Is.EqualTo((14, "sweep.random.params.optimizer.lr")));
        Assert.That(error.Message, Does.Contain("also in sweep.grid"));
    }

    // ---- helpers ----

    private const string FilePath = "/experiments/test.yaml";

    private ExperimentSpec Parse(string yaml) => ExperimentLoader.Parse(yaml, Path.Combine(fixture.Folder, "inline.yaml"));

    private static IReadOnlyList<SpecError> Errors(string yaml) =>
        Assert.Throws<SpecException>(() => ExperimentLoader.Parse(yaml, FilePath))!.Errors;

    private static SpecError SingleError(string yaml)
    {
        var errors = Errors(yaml);
        Assert.That(errors, Has.Count.EqualTo(1), string.Join("\n", errors));
        return errors[0];
    }

    /// <summary>A valid minimal file whose last line is `line` inside `section`.</summary>
    private static string WithLastLine(string section, string line)
    {
        var required = new Dictionary<string, string>
        {
            ["data"] = "train: data/train", ["model"] = "arch: encoder-decoder", ["objective"] = "kind: span-corruption",
        };
        var yaml = "name: mini\n";
        foreach (var (name, pair) in required.Where(r => r.Key != section)) yaml += $"{name}: {{{pair}}}\n";
        yaml += section + ":\n";
        if (required.TryGetValue(section, out var own)) yaml += $"  {own}\n";
        return yaml + $"  {line}\n";
    }

    private static int LineCount(string yaml) => yaml.TrimEnd('\n').Split('\n').Length;

    /// <summary>The error is at the given line, at the column where token starts on it, for the given key.</summary>
    private static void AssertAt(SpecError error, string yaml, int line, string token, string key)
    {
        var text = yaml.Replace("\r", "").Split('\n')[line - 1];
        var column = text.IndexOf(token, StringComparison.Ordinal) + 1;
        Assert.That(column, Is.GreaterThan(0), $"token {token} not on line {line}");
        Assert.That((error.File, error.Line, error.Column, error.Key), Is.EqualTo((FilePath, line, column, key)), error.ToString());
    }
}
