using System.Diagnostics;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Bench.Generation;

/// <summary>
/// The encoder's efficiency claim, measured: an encoder-decoder and its decoder-only twin of equal size, both
/// with KV caches, untrained and randomly initialised, generate greedily for a fixed number of tokens over a grid
/// of input lengths, output lengths and batch sizes. Both models see the same random input tokens; at each grid
/// point they run back to back, repeat by repeat, so that load from other processes hits both alike.
/// </summary>
public static class GenerationBenchmark
{
    private const int MinFirstTokenSamples = 2;

    public static string Method(GenerationBenchSettings settings) =>
        "CPU, float32, untrained N(0, 0.02) weights, greedy decoding with EOS ignored so every row generates the full " +
        "output length. First-token latency: from the input token tensor to the first generated token ids on the " +
        "host (encoder-decoder: encoder + cross-attention K/V of every decoder layer + one decoder step from BOS; " +
        "decoder-only: the whole input through every layer into the KV cache), the fastest of at least two. Decode " +
        "tokens/s: batch / the median time of one step after the first token (pooled over the repeats). End-to-end " +
        "tokens/s: batch x output / (first token + (output - 1) x median step). KV cache: bytes of the key/value tensors allocated (encoder-decoder: " +
        "decoder self-attention caches for the output plus cross-attention K/V computed once; decoder-only: caches " +
        "for input + output in every layer). Repeats: at least one full generation per model, more (up to " +
        $"{settings.MaxRepeats}) while the grid point has taken under {settings.RepeatBudgetSeconds:0.#} s; the two models alternate.";

    public static GenerationBenchResult Run(GenerationBenchSettings settings, Action<string> log)
    {
        settings.Validate();
        var wall = Stopwatch.StartNew();
        var loadAverage = File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
        var previousThreads = get_num_threads();
        set_num_threads(settings.Threads);
        try
        {
            return Measure(settings, log, wall, loadAverage);
        }
        finally
        {
            set_num_threads(previousThreads);
        }
    }

    private static GenerationBenchResult Measure(GenerationBenchSettings settings, Action<string> log, Stopwatch wall, string loadAverage)
    {
        using var scope = NewDisposeScope();
        manual_seed(settings.Seed);
        var encoderDecoder = GenerationSubject.EncoderDecoder(new EncoderDecoderModel(settings.EncoderDecoder), settings.BosId);
        var decoderOnly = GenerationSubject.DecoderOnly(new DecoderOnlyModel(ParameterCount.DecoderOnlyTwin(settings.EncoderDecoder)));
        GenerationSubject[] subjects = [encoderDecoder, decoderOnly];
        log($"generation: {Describe(encoderDecoder)} vs {Describe(decoderOnly)}, {settings.Threads} torch threads");

        // Warm-up: first calls pay for kernel selection and allocator growth.
        foreach (var subject in subjects)
            subject.Generate(RandomTokens(settings, 1, settings.InputLengths.Min()), Math.Min(8, settings.OutputLengths.Min()));

        var measurements = new List<GenerationMeasurement>();
        var comparisons = new List<GenerationComparison>();
        foreach (var inputLength in settings.InputLengths)
            foreach (var outputLength in settings.OutputLengths)
                foreach (var batch in settings.BatchSizes)
                {
                    var point = MeasurePoint(settings, subjects, inputLength, outputLength, batch);
                    measurements.AddRange(point);
                    var comparison = Compare(point[0], point[1]);
                    comparisons.Add(comparison);
                    log($"  S={inputLength,5} N={outputLength,4} B={batch,2}: first token {point[0].FirstTokenMs,8:F1} vs {point[1].FirstTokenMs,8:F1} ms, " +
                        $"decode {point[0].DecodeTokensPerSecond,7:F0} vs {point[1].DecodeTokensPerSecond,7:F0} tok/s, " +
                        $"KV {Mib(point[0].KvCacheBytes),7:F2} vs {Mib(point[1].KvCacheBytes),7:F2} MiB (encoder-decoder vs decoder-only)");
                }

        return new GenerationBenchResult(
            new GenerationMachine(Environment.ProcessorCount, settings.Threads, System.Runtime.InteropServices.RuntimeInformation.OSDescription, loadAverage),
            Info(encoderDecoder), Info(decoderOnly), Method(settings), measurements, comparisons, PublishedClaim.ReturnOfTheEncoder,
            wall.Elapsed.TotalSeconds);
    }

    /// <returns>one measurement per subject, in the order given</returns>
    private static GenerationMeasurement[] MeasurePoint(GenerationBenchSettings settings, GenerationSubject[] subjects,
        int inputLength, int outputLength, int batch)
    {
        using var scope = NewDisposeScope();
        var input = RandomTokens(settings, batch, inputLength);
        var runs = subjects.Select(_ => new List<GenerationRun>()).ToArray();
        var firstTokens = subjects.Select(_ => new List<double>()).ToArray();
        var clock = Stopwatch.StartNew();
        for (var repeat = 0; repeat < settings.MaxRepeats && (repeat == 0 || clock.Elapsed.TotalSeconds < settings.RepeatBudgetSeconds); repeat++)
            foreach (var i in Alternating(subjects.Length, repeat))
            {
                var run = subjects[i].Generate(input, outputLength);
                if (run.TokensPerRow != outputLength)
                    throw new InvalidOperationException($"{subjects[i].Name} generated {run.TokensPerRow} tokens per row, not {outputLength}.");
                runs[i].Add(run);
                firstTokens[i].Add(run.FirstTokenSeconds);
            }
        // Long inputs fit one full repeat in the budget; a second prefill (no decoding) still guards the
        // first-token latency, their costliest number, against one unlucky run.
        for (var repeat = runs[0].Count; firstTokens[0].Count < MinFirstTokenSamples; repeat++)
            foreach (var i in Alternating(subjects.Length, repeat))
                firstTokens[i].Add(subjects[i].Generate(input, outputLength, firstTokenOnly: true).FirstTokenSeconds);

        // Other processes only ever add time, so the fastest first token is the best estimate of its cost; steps
        // are many per run, and their median is robust to bursts of interference within a run.
        return subjects.Select((subject, i) =>
        {
            var firstToken = firstTokens[i].Min();
            var steps = outputLength - 1;
            var step = steps == 0 ? 0 : Median(runs[i].SelectMany(r => r.StepSeconds));
            return new GenerationMeasurement(subject.Name, inputLength, outputLength, batch, runs[i].Count,
                FirstTokenMs: firstToken * 1000,
                DecodeStepMs: step * 1000,
                DecodeTokensPerSecond: steps == 0 ? 0 : batch / step,
                EndToEndTokensPerSecond: batch * outputLength / (firstToken + steps * step),
                KvCacheBytes: runs[i][0].CacheBytes);
        }).ToArray();
    }

    /// <summary>Subject indices, reversed on odd repeats so that neither model always runs right after the other's allocations.</summary>
    private static IEnumerable<int> Alternating(int count, int repeat) =>
        repeat % 2 == 0 ? Enumerable.Range(0, count) : Enumerable.Range(0, count).Reverse();

    public static GenerationComparison Compare(GenerationMeasurement encoderDecoder, GenerationMeasurement decoderOnly) => new(
        encoderDecoder.InputLength, encoderDecoder.OutputLength, encoderDecoder.Batch,
        FirstTokenLatencyRatio: decoderOnly.FirstTokenMs / encoderDecoder.FirstTokenMs,
        FirstTokenLatencyReduction: 1 - encoderDecoder.FirstTokenMs / decoderOnly.FirstTokenMs,
        DecodeThroughputRatio: decoderOnly.DecodeTokensPerSecond == 0 ? 0 : encoderDecoder.DecodeTokensPerSecond / decoderOnly.DecodeTokensPerSecond,
        EndToEndThroughputRatio: encoderDecoder.EndToEndTokensPerSecond / decoderOnly.EndToEndTokensPerSecond,
        KvCacheRatio: (double)decoderOnly.KvCacheBytes / encoderDecoder.KvCacheBytes);

    /// <returns>[batch, length] int64 ids drawn uniformly from the ids above pad and BOS</returns>
    private static Tensor RandomTokens(GenerationBenchSettings settings, int batch, int length)
    {
        var lowest = Math.Max(settings.EncoderDecoder.PadId, settings.BosId) + 1;
        return randint(lowest, settings.EncoderDecoder.VocabSize, [batch, length], dtype: ScalarType.Int64);
    }

    private static GenerationModelInfo Info(GenerationSubject subject)
    {
        var c = subject.Config;
        var nonEmbedding = subject.Parameters - ParameterCount.Embedding(c) - ParameterCount.LmHead(c);
        return new GenerationModelInfo(subject.Name, c, subject.Parameters, nonEmbedding);
    }

    private static string Describe(GenerationSubject subject) =>
        $"{subject.Name} ({subject.Config.EncoderLayers}+{subject.Config.DecoderLayers} layers, {subject.Parameters / 1e6:F2}M parameters)";

    public static double Mib(long bytes) => bytes / (1024.0 * 1024.0);

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        if (sorted.Count == 0)
            throw new ArgumentException("The median of no values is undefined.", nameof(values));
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
