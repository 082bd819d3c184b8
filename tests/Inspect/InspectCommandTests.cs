using Training.Shared.Data;
using NUnit.Framework;
using Training.Shared.Training;
using Training.Orchestrator.Cli;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Tests.Support;

namespace Training.Tests.Inspect;

/// <summary><c>orchestrator inspect</c>, run as a real process: counts and FLOPs per trial, before anything runs.</summary>
public class InspectCommandTests
{
    private TempDirectory dir = null!;

    [SetUp]
    public void SetUp()
    {
        dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
    }

    [TearDown]
    public void TearDown() => dir.Dispose();

    private string Write(string yaml)
    {
        var path = dir.Combine("experiment.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private const string ArchSweep = """
        name: zoo
        data:
          train: train
        tokenizer:
          kind: char
          sentinels: 8
        model:
          arch: encoder-decoder
          d_model: 64
          layers: 4
          heads: 4
        objective:
          kind: auto
          input_length: 64
        sweep:
          grid:
            model.arch: [encoder-decoder, decoder-only, gpt, parallel-gpt, lc-gpt, cc-gpt, encoder-only, ettin-decoder]
        """;

    [Test]
    public async Task Inspect_SweepOverEveryArchitecture_PrintsEachTrialsCountsAndFlopsAndTrainsNothing()
    {
        var path = Write(ArchSweep);

        var result = await CliProcess.RunAsync(dir.Path, "inspect", path);

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        var trials = TrialComponents.Expand(ExperimentLoader.Load(path));
        var lines = result.Stdout.Split('\n');
        foreach (var trial in trials)
        {
            var budget = TrainingBudget.For(trial.Spec);
            var row = lines.Single(l => l.Contains(trial.Id, StringComparison.Ordinal));
            var cells = row.Split('│', StringSplitOptions.TrimEntries);
            Assert.That(cells, Does.Contain(SpecWriter.NameOf(trial.Spec.Model.Architecture)));
            Assert.That(cells, Does.Contain(SpecWriter.NameOf(trial.Spec.Objective.Kind)));
            Assert.That(cells, Does.Contain(InspectCommand.Integer(budget.Parameters.Total)), $"{trial.Id}: total parameters, exact");
            Assert.That(cells, Does.Contain(InspectCommand.Millions(budget.Parameters.NonEmbedding)), $"{trial.Id}: non-embedding");
            Assert.That(cells, Does.Contain(InspectCommand.Flops(budget.FlopsPerToken)), $"{trial.Id}: FLOPs per token");
        }
        Assert.That(Directory.Exists(dir.Combine("runs")), Is.False, "inspect runs nothing");
    }

    [Test]
    public void For_EncoderDecoderBudget_SplitsEncoderAndDecoderAndCountsSpanCorruptionTokens()
    {
        var spec = ExperimentLoader.Load(Write(ArchSweep));

        var budget = TrainingBudget.For(spec);

        var config = budget.Config;
        Assert.That(budget.Parameters.Encoder, Is.EqualTo(config.EncoderLayers * ParameterCount.EncoderLayer(config)));
        Assert.That(budget.Parameters.Decoder, Is.EqualTo(config.DecoderLayers * ParameterCount.DecoderLayer(config)));
        var lengths = SpanCorruption.ComputeLengths(64, 0.15, 3);
        Assert.That((budget.EncoderTokens, budget.DecoderTokens), Is.EqualTo((lengths.InputLength, lengths.TargetLength)));
        Assert.That(lengths.InputLength + lengths.TargetLength, Is.EqualTo(budget.TokensPerExample));
        Assert.That(budget.FlopsPerToken, Is.EqualTo(ParameterCount.TrainingFlopsPerToken(config, lengths.InputLength, lengths.TargetLength)));
        Assert.That(config.VocabSize, Is.EqualTo(4 + TestCorpusCharacters() + 8), "char vocabulary: specials + characters + sentinels");
    }

    private int TestCorpusCharacters() =>
        TestCorpus.Documents(240, seed: 1).SelectMany(d => d).Distinct().Count();

    [Test]
    public async Task Inspect_Released330MConfiguration_WithItsSentencePieceVocabulary_Prints332042240()
    {
        // SPEC.md section 1: T5's 32,000-piece SentencePiece model, 100 sentinels, the vocabulary padded to 32,128.
        SentencePieceModels.WriteT5Style(dir.Combine("spiece.model"), count: 32_000);
        var path = Write("""
            name: roe-330m
            data:
              train: train
            tokenizer:
              kind: sentencepiece
              path: spiece.model
              sentinels: 100
              pad_vocab_to: 128
            model:
              arch: encoder-decoder
              d_model: 1024
              encoder_layers: 20
              decoder_layers: 10
              heads: 6
              kv_heads: 3
              head_dim: 64
              ffn_dim: 4096
              mlp: gelu
            objective:
              kind: span-corruption
              input_length: 512
            """);

        var result = await CliProcess.RunAsync(dir.Path, "inspect", path);

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(result.Stdout, Does.Contain("332,042,240").And.Contain("32,128"));
    }

    [Test]
    public async Task Inspect_BadFile_ExitsTwoWithTheError()
    {
        var path = Write(ArchSweep.Replace("layers: 4", "layers: 4\n  local_window: 0"));

        var result = await CliProcess.RunAsync(dir.Path, "inspect", path);

        Assert.That(result.ExitCode, Is.EqualTo(2));
        Assert.That(result.Stderr, Does.Contain("model.local_window"));
    }

    [Test]
    public async Task Inspect_EqualFlopsComparison_PrintsTheChosenSizesAndTheirRatioToTheReference()
    {
        var path = Write("""
            name: equal
            data:
              train: train
            model:
              arch: encoder-decoder
              d_model: 64
              layers: 6
              encoder_fraction: 0.6667
              heads: 4
              head_dim: 16
            objective:
              kind: auto
              input_length: 64
            sweep:
              equal_flops:
                size_by: model.layers
                variants:
                  - {model.encoder_fraction: 0.3333}
                  - {model.arch: decoder-only}
            """);

        var result = await CliProcess.RunAsync(dir.Path, "inspect", path);

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        var trials = TrialComponents.Expand(ExperimentLoader.Load(path));
        var header = result.Stdout.Split('\n').Single(l => l.Contains("│ trial", StringComparison.Ordinal)).Split('│', StringSplitOptions.TrimEntries).ToList();
        foreach (var trial in trials)
        {
            var cells = result.Stdout.Split('\n').Single(l => l.Contains(trial.Id, StringComparison.Ordinal)).Split('│', StringSplitOptions.TrimEntries).ToList();
            var ratio = TrainingBudget.For(trial.Spec).FlopsPerToken / TrainingBudget.For(trials[0].Spec).FlopsPerToken;
            Assert.That(cells[header.IndexOf("model.layers")], Is.EqualTo(trial.Spec.Model.Layers.ToString()), trial.Id);
            Assert.That(double.Parse(cells[header.IndexOf("vs ref")], System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(ratio).Within(0.0005), trial.Id);
        }
        Assert.That(result.Stdout, Does.Contain("equal FLOPs: each variant's model.layers is chosen"));
    }
}
