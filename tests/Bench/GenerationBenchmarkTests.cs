using System.Text.Json;
using NUnit.Framework;
using SkiaSharp;
using Training.Bench.Generation;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Tests.Bench;

public class GenerationBenchmarkTests
{
    // GQA (4 query heads, 2 KV heads) as in the benchmark's own config, at a size that runs in milliseconds.
    private static readonly TransformerConfig Tiny = new(VocabSize: 40, DModel: 32, EncoderLayers: 2, DecoderLayers: 1,
        Heads: 4, KvHeads: 2, HeadDim: 8, FfnDim: 64, Dropout: 0.0);

    private const int Float32Bytes = 4;

    [Test]
    public void Generate_EncoderDecoder_RunsFullLengthAndCountsSelfAndCrossCaches()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var subject = GenerationSubject.EncoderDecoder(new EncoderDecoderModel(Tiny), bosId: 1);
        const int batch = 3, input = 11, output = 6;

        var run = subject.Generate(randint(2, Tiny.VocabSize, [batch, input], dtype: ScalarType.Int64), output);

        Assert.That(run.TokensPerRow, Is.EqualTo(output));
        // Per decoder layer: K and V for the output positions (self) and for the input positions (cross).
        long perPosition = 2L * batch * Tiny.KvHeads * Tiny.HeadDim * Float32Bytes;
        Assert.That(run.CacheBytes, Is.EqualTo(Tiny.DecoderLayers * perPosition * (output + input)));
        Assert.That(run.FirstTokenSeconds, Is.GreaterThan(0));
        Assert.That(run.DecodeSeconds, Is.GreaterThan(0));
    }

    [Test]
    public void Generate_DecoderOnly_CachesInputAndOutputInEveryLayer()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var twin = ParameterCount.DecoderOnlyTwin(Tiny);
        var subject = GenerationSubject.DecoderOnly(new DecoderOnlyModel(twin));
        const int batch = 2, input = 9, output = 5;

        var run = subject.Generate(randint(2, Tiny.VocabSize, [batch, input], dtype: ScalarType.Int64), output);

        Assert.That(run.TokensPerRow, Is.EqualTo(output));
        long perPosition = 2L * batch * twin.KvHeads * twin.HeadDim * Float32Bytes;
        // The last generated token is never fed back, so input + output - 1 positions.
        Assert.That(run.CacheBytes, Is.EqualTo(twin.DecoderLayers * perPosition * (input + output - 1)));
    }

    [Test]
    public void Generate_FirstTokenOnly_StopsAfterOneTokenWithTheFullSizedCache()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var subject = GenerationSubject.DecoderOnly(new DecoderOnlyModel(ParameterCount.DecoderOnlyTwin(Tiny)));
        var input = randint(2, Tiny.VocabSize, [1, 7], dtype: ScalarType.Int64);

        var full = subject.Generate(input, 4);
        var first = subject.Generate(input, 4, firstTokenOnly: true);

        Assert.That((first.TokensPerRow, first.StepSeconds.Count), Is.EqualTo((1, 0)));
        Assert.That(full.StepSeconds, Has.Count.EqualTo(3));
        Assert.That(first.CacheBytes, Is.EqualTo(full.CacheBytes));
    }

    [Test]
    public void Run_TinyGrid_MeasuresEveryPointAndWritesJsonMarkdownAndPlot()
    {
        using var scope = NewDisposeScope();
        var previousThreads = get_num_threads();
        var settings = new GenerationBenchSettings(Tiny, InputLengths: [8, 32], OutputLengths: [3], BatchSizes: [1, 2],
            Threads: 1, MaxRepeats: 2);
        var lines = new List<string>();

        var result = GenerationBenchmark.Run(settings, lines.Add);

        Assert.That(get_num_threads(), Is.EqualTo(previousThreads));
        Assert.That(result.Measurements, Has.Count.EqualTo(2 * 1 * 2 * 2));
        Assert.That(result.Comparisons, Has.Count.EqualTo(4));
        Assert.That(result.DecoderOnly.Config.EncoderLayers, Is.Zero);
        Assert.That(result.Measurements.All(m => m.FirstTokenMs > 0 && m.DecodeTokensPerSecond > 0 && m.KvCacheBytes > 0), Is.True);
        // The decoder-only model caches the input in every layer: its cache grows faster with input length.
        var cacheRatios = result.Comparisons.Where(c => c.Batch == 1).OrderBy(c => c.InputLength).Select(c => c.KvCacheRatio).ToList();
        Assert.That(cacheRatios[1], Is.GreaterThan(cacheRatios[0]));
        Assert.That(lines, Has.Count.EqualTo(1 + 4));

        var folder = Path.Combine(Path.GetTempPath(), $"genbench-{Guid.NewGuid():N}");
        try
        {
            GenerationReport.Write(result, folder);

            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "generation.json")));
            Assert.That(json.RootElement.GetProperty("measurements").GetArrayLength(), Is.EqualTo(8));
            Assert.That(json.RootElement.GetProperty("encoder_decoder").GetProperty("config").GetProperty("mlp").GetString(), Is.EqualTo("GeluTanh"));

            var markdown = File.ReadAllText(Path.Combine(folder, "generation.md"));
            Assert.That(markdown, Does.Contain("| 32 | 3 | 2 |").And.Contain("47%").And.Contain("4.7x").And.Contain("generation.png"));

            using var png = SKBitmap.Decode(Path.Combine(folder, "generation.png"));
            Assert.That((png.Width, png.Height), Is.EqualTo((3 * GenerationPlot.PanelWidth, GenerationPlot.PanelHeight + GenerationPlot.TitleHeight)));
            // Both models' lines are drawn (their colours), and so is text (near-black pixels of the title and labels).
            var pixels = png.Pixels;
            Assert.That(pixels.Count(p => p == new SKColor(31, 119, 180)), Is.GreaterThan(200));
            Assert.That(pixels.Count(p => p == new SKColor(230, 110, 20)), Is.GreaterThan(200));
            Assert.That(pixels.Count(p => p.Red < 60 && p.Green < 60 && p.Blue < 60), Is.GreaterThan(500));
        }
        finally
        {
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
        }
    }

    [TestCase(2048, "2048")]
    [TestCase(20000, "20k")]
    [TestCase(1500000, "1.5M")]
    [TestCase(0.5, "0.5")]
    [TestCase(0.002, "0.002")]
    public void PlotLabel_Value_GivesShortLabel(double value, string expected) =>
        Assert.That(GenerationPlot.Label(value), Is.EqualTo(expected));

    [Test]
    public void PlotLogTicks_OneDecade_Gives125StepsAndManyDecadesGivePowersOnly()
    {
        Assert.That(GenerationPlot.LogTicks(48, 600), Is.EqualTo(new[] { 50.0, 100, 200, 500 }).Within(1e-9));
        Assert.That(GenerationPlot.LogTicks(20, 12000), Is.EqualTo(new[] { 100.0, 1000, 10000 }).Within(1e-9));
    }

    [Test]
    public void Validate_EmptyBatchList_ThrowsNamingTheSetting()
    {
        var settings = GenerationBenchSettings.Default(threads: 1) with { BatchSizes = [] };
        var error = Assert.Throws<ArgumentException>(settings.Validate);
        Assert.That(error!.Message, Does.Contain("BatchSizes"));
    }
}
