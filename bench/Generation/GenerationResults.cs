using Training.Shared.Models;

namespace Training.Bench.Generation;

/// <summary>One model at one grid point, over its repeats.</summary>
/// <param name="FirstTokenMs">the fastest first token of the repeats</param>
/// <param name="DecodeStepMs">median of all decoding steps after the first token (one token per row)</param>
/// <param name="DecodeTokensPerSecond">Batch / DecodeStepMs: tokens of all rows per second</param>
/// <param name="EndToEndTokensPerSecond">Batch * OutputLength / (first token + (OutputLength - 1) * step)</param>
public sealed record GenerationMeasurement(
    string Model,
    int InputLength,
    int OutputLength,
    int Batch,
    int Repeats,
    double FirstTokenMs,
    double DecodeStepMs,
    double DecodeTokensPerSecond,
    double EndToEndTokensPerSecond,
    long KvCacheBytes);

/// <summary>Decoder-only against encoder-decoder at one grid point.</summary>
/// <param name="FirstTokenLatencyRatio">decoder-only / encoder-decoder first-token latency</param>
/// <param name="FirstTokenLatencyReduction">1 - encoder-decoder / decoder-only (the paper's "47% lower")</param>
/// <param name="DecodeThroughputRatio">encoder-decoder / decoder-only decode tokens/s</param>
/// <param name="EndToEndThroughputRatio">encoder-decoder / decoder-only end-to-end tokens/s</param>
/// <param name="KvCacheRatio">decoder-only / encoder-decoder KV cache bytes</param>
public sealed record GenerationComparison(
    int InputLength,
    int OutputLength,
    int Batch,
    double FirstTokenLatencyRatio,
    double FirstTokenLatencyReduction,
    double DecodeThroughputRatio,
    double EndToEndThroughputRatio,
    double KvCacheRatio);

public sealed record GenerationModelInfo(string Name, TransformerConfig Config, long Parameters, long NonEmbeddingParameters);

public sealed record GenerationMachine(int Cores, int TorchThreads, string Os, string LoadAverageAtStart);

/// <summary>SPEC.md section 1: the published claim (device, lengths and batch sizes unverified).</summary>
public sealed record PublishedClaim(
    double FirstTokenLatencyReduction,
    double ThroughputRatio,
    string Note)
{
    public static PublishedClaim ReturnOfTheEncoder { get; } = new(0.47, 4.7,
        "arXiv 2501.16273: 47% lower first-token latency and 4.7x higher throughput on edge devices; 330M model: " +
        "86 ms / 37.4 tok/s on GPU, 1591 ms / 15.3 tok/s on CPU (device, lengths and batch sizes unverified).");
}

public sealed record GenerationBenchResult(
    GenerationMachine Machine,
    GenerationModelInfo EncoderDecoder,
    GenerationModelInfo DecoderOnly,
    string Method,
    IReadOnlyList<GenerationMeasurement> Measurements,
    IReadOnlyList<GenerationComparison> Comparisons,
    PublishedClaim Published,
    double WallSeconds);
