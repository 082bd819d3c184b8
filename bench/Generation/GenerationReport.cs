using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Training.Bench.Support;

namespace Training.Bench.Generation;

/// <summary>Writes generation.json, generation.md and generation.png (<see cref="GenerationPlot"/>) from one benchmark result.</summary>
public static class GenerationReport
{
    public static void Write(GenerationBenchResult result, string outDir)
    {
        Directory.CreateDirectory(outDir);
        ResultFiles.WriteText(outDir, "generation.json", ToJson(result));
        ResultFiles.WriteText(outDir, "generation.md", ToMarkdown(result, "generation.png"));
        File.WriteAllBytes(Path.Combine(outDir, "generation.png"), GenerationPlot.Png(result));
    }

    public static string ToJson(GenerationBenchResult result) => JsonSerializer.Serialize(result, new JsonSerializerOptions
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter() },
    });

    public static string ToMarkdown(GenerationBenchResult result, string plotFile)
    {
        var md = new StringBuilder();
        void Line(FormattableString text) => md.AppendLine(text.ToString(CultureInfo.InvariantCulture));

        md.AppendLine("# Generation: encoder-decoder vs decoder-only of equal size").AppendLine();
        Line($"Machine: {result.Machine.Cores} cores (torch intra-op threads: {result.Machine.TorchThreads}), {result.Machine.Os}; load average at start {result.Machine.LoadAverageAtStart} (other work shares these cores; both models run back to back at every point, so their ratios are fairer than the absolute times). Whole benchmark: {result.WallSeconds:F0} s.");
        md.AppendLine();
        md.AppendLine("| model | layers (encoder + decoder) | d_model | attention (heads x dim, KV heads) | FFN | vocab | parameters | non-embedding |");
        md.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var model in new[] { result.EncoderDecoder, result.DecoderOnly })
        {
            var c = model.Config;
            Line($"| {model.Name} | {c.EncoderLayers} + {c.DecoderLayers} | {c.DModel} | {c.Heads} x {c.HeadDim}, {c.KvHeads} | {c.FfnDim} {c.Mlp} | {c.VocabSize} | {model.Parameters:N0} | {model.NonEmbeddingParameters:N0} |");
        }
        md.AppendLine();
        md.AppendLine("Method: " + result.Method).AppendLine();

        md.AppendLine("## Against the published claim").AppendLine();
        Line($"Published: {result.Published.Note}");
        md.AppendLine();
        md.AppendLine("| measure | published | measured here: geometric mean over all points | range | at the longest input |");
        md.AppendLine("|---|---|---|---|---|");
        var longest = result.Comparisons.Where(c => c.InputLength == result.Comparisons.Max(x => x.InputLength)).ToList();
        var latency = result.Comparisons.Select(c => c.FirstTokenLatencyRatio).ToList();
        var longestLatency = longest.Select(c => c.FirstTokenLatencyRatio).ToList();
        Line($"| first-token latency, encoder-decoder lower by | {Percent(result.Published.FirstTokenLatencyReduction)} | {Percent(1 - 1 / GeometricMean(latency))} (decoder-only / encoder-decoder = {GeometricMean(latency):F2}x) | {Percent(1 - 1 / latency.Min())} .. {Percent(1 - 1 / latency.Max())} | {Percent(1 - 1 / GeometricMean(longestLatency))} |");
        foreach (var (label, select) in new (string, Func<GenerationComparison, double>)[]
                 {
                     ("decode throughput, encoder-decoder / decoder-only", c => c.DecodeThroughputRatio),
                     ("end-to-end throughput, encoder-decoder / decoder-only", c => c.EndToEndThroughputRatio),
                 })
        {
            var values = result.Comparisons.Select(select).ToList();
            Line($"| {label} | {result.Published.ThroughputRatio:F1}x | {GeometricMean(values):F2}x | {values.Min():F2}x .. {values.Max():F2}x | {GeometricMean(longest.Select(select)):F2}x |");
        }
        var cache = result.Comparisons.Select(c => c.KvCacheRatio).ToList();
        Line($"| KV cache, decoder-only / encoder-decoder | - | {GeometricMean(cache):F2}x | {cache.Min():F2}x .. {cache.Max():F2}x | {GeometricMean(longest.Select(c => c.KvCacheRatio)):F2}x |");
        md.AppendLine();
        md.AppendLine("The published figures are for a trained 330M model on unstated devices, lengths and batch sizes; these models are " +
                      "small and untrained (the weights do not change the amount of work), so only the ratios are comparable, not the absolute times.")
            .AppendLine();

        md.AppendLine("## Every point").AppendLine();
        md.AppendLine("ED = encoder-decoder, DO = decoder-only. Latency ratio = DO / ED; throughput ratio = ED / DO; cache ratio = DO / ED. " +
                      "Full runs: complete generations per model (the first token is the fastest of at least two prefills).").AppendLine();
        md.AppendLine("| input | output | batch | first token ms ED / DO | latency ratio | decode tok/s ED / DO | decode ratio | end-to-end tok/s ED / DO | end-to-end ratio | KV cache MiB ED / DO | cache ratio | full runs |");
        md.AppendLine("|---:|---:|---:|---|---:|---|---:|---|---:|---|---:|---:|");
        foreach (var c in result.Comparisons)
        {
            var ed = Find(result, result.EncoderDecoder.Name, c);
            var dO = Find(result, result.DecoderOnly.Name, c);
            Line($"| {c.InputLength} | {c.OutputLength} | {c.Batch} | {ed.FirstTokenMs:F1} / {dO.FirstTokenMs:F1} | {c.FirstTokenLatencyRatio:F2}x | {ed.DecodeTokensPerSecond:F0} / {dO.DecodeTokensPerSecond:F0} | {c.DecodeThroughputRatio:F2}x | {ed.EndToEndTokensPerSecond:F0} / {dO.EndToEndTokensPerSecond:F0} | {c.EndToEndThroughputRatio:F2}x | {GenerationBenchmark.Mib(ed.KvCacheBytes):F2} / {GenerationBenchmark.Mib(dO.KvCacheBytes):F2} | {c.KvCacheRatio:F2}x | {ed.Repeats} |");
        }
        md.AppendLine();
        md.AppendLine($"![first-token latency, decode throughput and KV cache against input length]({plotFile})");
        return md.ToString();
    }

    private static GenerationMeasurement Find(GenerationBenchResult result, string model, GenerationComparison c) =>
        result.Measurements.Single(m => m.Model == model && m.InputLength == c.InputLength && m.OutputLength == c.OutputLength && m.Batch == c.Batch);

    private static string Percent(double fraction) => (fraction * 100).ToString("F0", CultureInfo.InvariantCulture) + "%";

    private static double GeometricMean(IEnumerable<double> values)
    {
        var list = values.ToList();
        return Math.Exp(list.Average(Math.Log));
    }
}
