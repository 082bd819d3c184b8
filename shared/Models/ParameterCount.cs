using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// A model's parameters by part. Embedding holds every vocabulary- or position-sized table: token embedding,
/// learned positions, and an untied LM head (a tied head is the embedding itself). Encoder and Decoder hold the
/// layers of each stack (with their norms, and the GPT compressors); Other holds final norms, Ettin's embedding
/// norm and prediction head, and parallel-gpt's mixing weight.
/// </summary>
public sealed record ParameterBreakdown(long Total, long Embedding, long Encoder, long Decoder, long Other)
{
    /// <summary>Total minus the embedding tables (the "N" of scaling laws).</summary>
    public long NonEmbedding => Total - Embedding;
}

/// <summary>
/// Parameter counts computed from a config (no tensors allocated) and counted on a real module, plus the
/// training-compute estimate used for throughput/MFU reporting and equal-FLOP comparisons, for every architecture.
/// For <see cref="TransformerConfig.Reference330M"/>: encoder layer 9,577,216; decoder layer 10,759,680;
/// embedding 32,899,072; final norms 2,048; total 332,042,240.
/// Ettin: V*d + L*(4d^2 + 3*d*I + 2d) + (d^2 + d) + 2d (SPEC.md section 2).
/// </summary>
public static class ParameterCount
{
    /// <summary>Token embedding V*d (shared with the LM head when tied).</summary>
    public static long Embedding(TransformerConfig c) => (long)c.VocabSize * c.DModel;

    /// <summary>Separate LM head V*d when embeddings are not tied, else 0 (encoder-decoder and its twin).</summary>
    public static long LmHead(TransformerConfig c) => c.TieEmbeddings ? 0 : (long)c.VocabSize * c.DModel;

    /// <summary>q, k, v, out projections at width c.DModel, with biases unless <paramref name="bias"/> is false.</summary>
    public static long Attention(TransformerConfig c, bool bias = true)
    {
        long d = c.DModel, attention = c.AttentionDim, keyValue = c.KeyValueDim, b = bias ? 1 : 0;
        return (d * attention + b * attention) + 2 * (d * keyValue + b * keyValue) + (attention * d + b * d);
    }

    /// <summary>MLP projections at width c.DModel, with biases unless <paramref name="bias"/> is false.</summary>
    public static long FeedForward(TransformerConfig c, bool bias = true)
    {
        long d = c.DModel, f = c.FfnDim, b = bias ? 1 : 0;
        return c.Mlp switch
        {
            MlpKind.GeluTanh => (d * f + b * f) + (f * d + b * d),
            MlpKind.SwiGlu or MlpKind.GeGlu => 2 * (d * f + b * f) + (f * d + b * d),
            _ => throw new ArgumentException($"TransformerConfig.Mlp = {c.Mlp} is not a known MlpKind.", nameof(c)),
        };
    }

    /// <summary>Self-attention, MLP and their two norms.</summary>
    public static long EncoderLayer(TransformerConfig c) => Attention(c) + FeedForward(c) + 2L * c.DModel;

    /// <summary>Self-attention, cross-attention, MLP and their three norms.</summary>
    public static long DecoderLayer(TransformerConfig c) => 2 * Attention(c) + FeedForward(c) + 3L * c.DModel;

    /// <summary>A layer of the decoder-only twin: the same parameters as an encoder layer (no biases for a Llama teacher).</summary>
    public static long DecoderOnlyLayer(TransformerConfig c) =>
        Attention(c, bias: c.Bias) + FeedForward(c, bias: c.Bias) + 2L * c.DModel;

    /// <summary>A GPT block at width c.DModel: attention and MLP with biases, two LayerNorms with bias.</summary>
    public static long GptBlock(TransformerConfig c) => Attention(c) + FeedForward(c) + 4L * c.DModel;

    /// <summary>An Ettin layer: attention and GeGLU MLP without biases, two LayerNorms without bias.</summary>
    public static long EttinLayer(TransformerConfig c) => Attention(c, bias: false) + FeedForward(c, bias: false) + 2L * c.DModel;

    /// <summary>Final RMSNorm weights: one per stack (2d for the encoder-decoder, d for the decoder-only twin).</summary>
    public static long FinalNorms(TransformerConfig c) => (c.IsDecoderOnly ? 1L : 2L) * c.DModel;

    public static long EncoderDecoder(TransformerConfig c)
    {
        c.Validate();
        if (c.Architecture != ModelArchitecture.EncoderDecoder)
            throw new ArgumentException(
                $"TransformerConfig.Architecture = {c.Architecture} (EncoderLayers = {c.EncoderLayers}) is not an encoder-decoder; use Total.", nameof(c));
        return Embedding(c) + LmHead(c) + c.EncoderLayers * EncoderLayer(c) + c.DecoderLayers * DecoderLayer(c) + FinalNorms(c);
    }

    public static long DecoderOnly(TransformerConfig c)
    {
        c.Validate();
        if (c.Architecture != ModelArchitecture.DecoderOnly)
            throw new ArgumentException(
                $"TransformerConfig.EncoderLayers = {c.EncoderLayers}, Architecture = {c.Architecture}: the decoder-only count needs the " +
                "decoder-only twin (EncoderLayers = 0, see DecoderOnlyTwin); use Total for other architectures.", nameof(c));
        return Embedding(c) + LmHead(c) + c.DecoderLayers * DecoderOnlyLayer(c) + FinalNorms(c);
    }

    /// <summary>Parameters of any architecture.</summary>
    public static long Total(TransformerConfig c) => Breakdown(c).Total;

    /// <summary>Parameters of any architecture, by part; matches <see cref="Count"/> of the built model.</summary>
    public static ParameterBreakdown Breakdown(TransformerConfig c)
    {
        c.Validate();
        long v = c.VocabSize, d = c.DModel;
        long embedding, encoder = 0, decoder = 0, other;
        switch (c.Architecture)
        {
            case ModelArchitecture.EncoderDecoder:
                embedding = Embedding(c) + LmHead(c);
                encoder = c.EncoderLayers * EncoderLayer(c);
                decoder = c.DecoderLayers * DecoderLayer(c);
                other = FinalNorms(c);
                break;
            case ModelArchitecture.DecoderOnly:
                embedding = Embedding(c) + LmHead(c);
                decoder = c.DecoderLayers * DecoderOnlyLayer(c);
                other = FinalNorms(c);
                break;
            case ModelArchitecture.Gpt:
                embedding = (v + c.MaxPositions) * d + (d * v + v);
                decoder = c.DecoderLayers * GptBlock(c);
                other = GptFinalNorm(c, d);
                break;
            case ModelArchitecture.ParallelGpt:
                // Embedding and positions are 2d wide; each branch holds half the blocks at width d.
                embedding = (v + c.MaxPositions) * 2 * d + (d * v + v);
                decoder = c.DecoderLayers * GptBlock(c);
                other = 1 + GptFinalNorm(c, d);
                break;
            case ModelArchitecture.LinearlyCompressedGpt or ModelArchitecture.ConvCompressedGpt:
                long finalWidth = c.StageWidth(c.CompressionStages);
                embedding = (v + c.MaxPositions) * d + (finalWidth * v + v);
                var blocksPerStage = c.DecoderLayers / c.CompressionStages;
                for (var stage = 0; stage < c.CompressionStages; stage++)
                {
                    long width = c.StageWidth(stage);
                    decoder += blocksPerStage * GptBlock(c.AtWidth((int)width)) + Compressor(width);
                }
                other = GptFinalNorm(c, finalWidth);
                break;
            case ModelArchitecture.EncoderOnly or ModelArchitecture.EttinDecoder:
                embedding = Embedding(c);
                var layers = c.Layers * EttinLayer(c);
                if (c.Architecture == ModelArchitecture.EncoderOnly) encoder = layers; else decoder = layers;
                other = 2 * d + (d * d + d); // embedding norm + final norm, prediction head dense + norm
                break;
            default:
                throw new ArgumentException($"TransformerConfig.Architecture = {c.Architecture} has no parameter count.", nameof(c));
        }
        return new ParameterBreakdown(embedding + encoder + decoder + other, embedding, encoder, decoder, other);
    }

    /// <summary>A width -> width/2 compressor with bias (Linear and Conv1d of kernel 1 have the same count).</summary>
    public static long Compressor(long width) => width * (width / 2) + width / 2;

    private static long GptFinalNorm(TransformerConfig c, long width) => c.NormPosition == NormPosition.Pre ? 2 * width : 0;

    /// <summary>Sum of the element counts of a module's actual parameters (a tied head is one parameter).</summary>
    public static long Count(nn.Module module) => module.parameters().Sum(p => p.numel());

    /// <summary>
    /// The decoder-only model of (nearly) equal size to an encoder-decoder config: the same widths with
    /// round(non-embedding parameters / decoder-only layer) layers. For the 330M reference that is 31 layers.
    /// </summary>
    public static TransformerConfig DecoderOnlyTwin(TransformerConfig encoderDecoder)
    {
        var c = encoderDecoder;
        var nonEmbedding = EncoderDecoder(c) - Embedding(c) - LmHead(c) - FinalNorms(c);
        var layers = (int)Math.Max(1, Math.Round((double)nonEmbedding / DecoderOnlyLayer(c)));
        return c with { EncoderLayers = 0, DecoderLayers = layers };
    }

    /// <summary>
    /// Training FLOPs for one example, dense-matmul convention (Kaplan et al. 2020; PaLM appendix B):
    /// a weight matrix costs 2 FLOPs per multiply-accumulate per token it is applied to in the forward pass and
    /// twice that backward, so 6 * weights * tokens; attention scores and the weighted sum cost
    /// 2 * 2 * keys * (Heads*HeadDim) per query forward, so 12 * keys * Heads * HeadDim for training, with keys the
    /// full length attended (causal masking not halved, as in PaLM's MFU; a sliding-window layer attends at most its
    /// window). Biases, norms, softmax and RoPE are ignored (under 1%); embedding lookups are gathers (free); the LM
    /// head is counted on every token it predicts from.
    /// Encoder-decoder: the encoder runs on S tokens; decoder self-attention, cross-attention queries/outputs,
    /// MLP and head on T tokens; cross-attention keys/values are projected from the S encoder positions.
    /// Single-stack models: the encoder-only model reads encoderLength tokens (decoderLength 0); every causal model
    /// reads decoderLength tokens (encoderLength 0).
    /// </summary>
    public static double TrainingFlopsPerExample(TransformerConfig c, int encoderLength, int decoderLength)
    {
        c.Validate();
        var architecture = c.Architecture;
        if (encoderLength < 0 || decoderLength < 0)
            throw new ArgumentException($"Lengths must not be negative, got encoder {encoderLength} and decoder {decoderLength}.");
        switch (architecture)
        {
            case ModelArchitecture.EncoderDecoder when encoderLength == 0 || decoderLength == 0:
                throw new ArgumentException("An encoder-decoder config needs encoderLength > 0 and decoderLength > 0.", nameof(encoderLength));
            case ModelArchitecture.EncoderOnly when encoderLength == 0 || decoderLength != 0:
                throw new ArgumentException(
                    $"The encoder-only model reads encoderLength tokens and has no decoder: got {encoderLength} and {decoderLength}.", nameof(decoderLength));
            case not (ModelArchitecture.EncoderDecoder or ModelArchitecture.EncoderOnly) when encoderLength != 0 || decoderLength == 0:
                throw new ArgumentException(
                    $"A causal {architecture} config has no encoder; pass encoderLength 0 and the context as decoderLength, got {encoderLength} and {decoderLength}.",
                    nameof(encoderLength));
        }

        return architecture switch
        {
            ModelArchitecture.EncoderDecoder or ModelArchitecture.DecoderOnly => TransformerFlops(c, encoderLength, decoderLength),
            ModelArchitecture.EncoderOnly => encoderLength * EttinFlopsPerToken(c, encoderLength),
            ModelArchitecture.EttinDecoder => decoderLength * EttinFlopsPerToken(c, decoderLength),
            _ => decoderLength * GptFlopsPerToken(c, decoderLength),
        };
    }

    /// <summary>
    /// <see cref="TrainingFlopsPerExample"/> divided by the tokens the example feeds (encoder + decoder),
    /// so that tokens/s * this = FLOP/s.
    /// </summary>
    public static double TrainingFlopsPerToken(TransformerConfig c, int encoderLength, int decoderLength) =>
        TrainingFlopsPerExample(c, encoderLength, decoderLength) / (encoderLength + decoderLength);

    private static double MlpWeights(TransformerConfig c) => (c.Mlp == MlpKind.GeluTanh ? 2 : 3) * (double)c.DModel * c.FfnDim;

    /// <summary>Weights a token meets in one self-attention layer: q and out (d x A each), k and v (d x KV each).</summary>
    private static double SelfAttentionWeights(TransformerConfig c) => 2.0 * c.DModel * c.AttentionDim + 2.0 * c.DModel * c.KeyValueDim;

    private static double TransformerFlops(TransformerConfig c, int encoderLength, int decoderLength)
    {
        double d = c.DModel, attention = c.AttentionDim, keyValue = c.KeyValueDim;
        double s = encoderLength, t = decoderLength;
        var queryOutWeights = 2 * d * attention;
        var keyValueWeights = 2 * d * keyValue;
        var mlpWeights = MlpWeights(c);
        var headWeights = (double)c.VocabSize * c.DModel;

        var encoder = c.EncoderLayers * s * (6 * (queryOutWeights + keyValueWeights + mlpWeights) + 12 * s * attention);
        var crossQueryOutWeights = c.IsDecoderOnly ? 0 : queryOutWeights;
        var decoderPerToken = c.DecoderLayers * (6 * (queryOutWeights + keyValueWeights + crossQueryOutWeights + mlpWeights)
            + 12 * (t + s) * attention) + 6 * headWeights;
        var crossKeyValues = c.DecoderLayers * s * 6 * keyValueWeights;
        return encoder + t * decoderPerToken + crossKeyValues;
    }

    /// <summary>One token through the GPT variant's blocks, compressors and head, attending over <paramref name="length"/> keys.</summary>
    private static double GptFlopsPerToken(TransformerConfig c, int length)
    {
        double Block(TransformerConfig w) => 6 * (SelfAttentionWeights(w) + MlpWeights(w)) + 12.0 * length * w.AttentionDim;
        switch (c.Architecture)
        {
            case ModelArchitecture.Gpt:
            case ModelArchitecture.ParallelGpt: // both branches of L/2 blocks at width d: L blocks per token
                return c.DecoderLayers * Block(c) + 6.0 * c.VocabSize * c.DModel;
            default:
                var blocksPerStage = c.DecoderLayers / c.CompressionStages;
                double total = 0;
                for (var stage = 0; stage < c.CompressionStages; stage++)
                {
                    var width = c.StageWidth(stage);
                    total += blocksPerStage * Block(c.AtWidth(width)) + 6.0 * width * (width / 2);
                }
                return total + 6.0 * c.VocabSize * c.StageWidth(c.CompressionStages);
        }
    }

    /// <summary>One token through the Ettin layers (local layers attend at most their window) and the head.</summary>
    private static double EttinFlopsPerToken(TransformerConfig c, int length)
    {
        var localKeys = Math.Min(length, c.Architecture == ModelArchitecture.EncoderOnly ? 2 * (c.LocalWindow / 2) + 1 : c.LocalWindow);
        double total = 0;
        for (var layer = 0; layer < c.Layers; layer++)
        {
            var keys = layer % c.GlobalEvery == 0 ? length : localKeys;
            total += 6 * (SelfAttentionWeights(c) + MlpWeights(c)) + 12.0 * keys * c.AttentionDim;
        }
        return total + 6.0 * c.DModel * c.DModel + 6.0 * c.VocabSize * c.DModel;
    }
}
