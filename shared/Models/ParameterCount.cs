using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Parameter counts computed from a config (no tensors allocated) and counted on a real module, plus the
/// training-compute estimate used for throughput/MFU reporting.
/// For <see cref="TransformerConfig.Reference330M"/>: encoder layer 9,577,216; decoder layer 10,759,680;
/// embedding 32,899,072; final norms 2,048; total 332,042,240.
/// </summary>
public static class ParameterCount
{
    /// <summary>Token embedding V*d (shared with the LM head when tied).</summary>
    public static long Embedding(TransformerConfig c) => (long)c.VocabSize * c.DModel;

    /// <summary>Separate LM head V*d when embeddings are not tied, else 0.</summary>
    public static long LmHead(TransformerConfig c) => c.TieEmbeddings ? 0 : (long)c.VocabSize * c.DModel;

    /// <summary>q, k, v, out projections with biases.</summary>
    public static long Attention(TransformerConfig c)
    {
        long d = c.DModel, attention = c.AttentionDim, keyValue = c.KeyValueDim;
        return (d * attention + attention) + 2 * (d * keyValue + keyValue) + (attention * d + d);
    }

    /// <summary>MLP projections with biases.</summary>
    public static long FeedForward(TransformerConfig c)
    {
        long d = c.DModel, f = c.FfnDim;
        return c.Mlp switch
        {
            MlpKind.GeluTanh => (d * f + f) + (f * d + d),
            MlpKind.SwiGlu => 2 * (d * f + f) + (f * d + d),
            _ => throw new ArgumentException($"TransformerConfig.Mlp = {c.Mlp} is not a known MlpKind.", nameof(c)),
        };
    }

    /// <summary>Self-attention, MLP and their two norms.</summary>
    public static long EncoderLayer(TransformerConfig c) => Attention(c) + FeedForward(c) + 2L * c.DModel;

    /// <summary>Self-attention, cross-attention, MLP and their three norms.</summary>
    public static long DecoderLayer(TransformerConfig c) => 2 * Attention(c) + FeedForward(c) + 3L * c.DModel;

    /// <summary>A layer of the decoder-only twin: the same parameters as an encoder layer.</summary>
    public static long DecoderOnlyLayer(TransformerConfig c) => EncoderLayer(c);

    /// <summary>Final RMSNorm weights: one per stack (2d for the encoder-decoder, d for the decoder-only twin).</summary>
    public static long FinalNorms(TransformerConfig c) => (c.IsDecoderOnly ? 1L : 2L) * c.DModel;

    public static long EncoderDecoder(TransformerConfig c)
    {
        c.Validate();
        if (c.IsDecoderOnly)
            throw new ArgumentException("TransformerConfig.EncoderLayers = 0 describes a decoder-only model; use DecoderOnly.", nameof(c));
        return Embedding(c) + LmHead(c) + c.EncoderLayers * EncoderLayer(c) + c.DecoderLayers * DecoderLayer(c) + FinalNorms(c);
    }

    public static long DecoderOnly(TransformerConfig c)
    {
        c.Validate();
        if (!c.IsDecoderOnly)
            throw new ArgumentException(
                $"TransformerConfig.EncoderLayers = {c.EncoderLayers}: the decoder-only count needs EncoderLayers = 0 (see DecoderOnlyTwin).", nameof(c));
        return Embedding(c) + LmHead(c) + c.DecoderLayers * DecoderOnlyLayer(c) + FinalNorms(c);
    }

    /// <summary>Parameters of either architecture, chosen by <see cref="TransformerConfig.IsDecoderOnly"/>.</summary>
    public static long Total(TransformerConfig c) => c.IsDecoderOnly ? DecoderOnly(c) : EncoderDecoder(c);

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
    /// full length attended (causal masking not halved, as in PaLM's MFU). Biases, norms, softmax and RoPE are
    /// ignored (under 1%); the embedding lookup is a gather (free); the LM head is counted on decoder tokens.
    /// Encoder-decoder: the encoder runs on S tokens; decoder self-attention, cross-attention queries/outputs,
    /// MLP and head on T tokens; cross-attention keys/values are projected from the S encoder positions.
    /// Decoder-only (EncoderLayers = 0): pass encoderLength = 0 and the context as decoderLength.
    /// </summary>
    public static double TrainingFlopsPerExample(TransformerConfig c, int encoderLength, int decoderLength)
    {
        c.Validate();
        if (encoderLength < 0 || decoderLength <= 0)
            throw new ArgumentException($"Lengths must be encoder >= 0 and decoder > 0, got {encoderLength} and {decoderLength}.");
        if (c.IsDecoderOnly && encoderLength != 0)
            throw new ArgumentException($"A decoder-only config has no encoder; encoderLength must be 0, got {encoderLength}.", nameof(encoderLength));
        if (!c.IsDecoderOnly && encoderLength == 0)
            throw new ArgumentException("An encoder-decoder config needs encoderLength > 0.", nameof(encoderLength));

        double d = c.DModel, attention = c.AttentionDim, keyValue = c.KeyValueDim, f = c.FfnDim;
        double s = encoderLength, t = decoderLength;
        var queryOutWeights = 2 * d * attention;
        var keyValueWeights = 2 * d * keyValue;
        var mlpWeights = (c.Mlp == MlpKind.SwiGlu ? 3 : 2) * d * f;
        var headWeights = (double)c.VocabSize * c.DModel;

        var encoder = c.EncoderLayers * s * (6 * (queryOutWeights + keyValueWeights + mlpWeights) + 12 * s * attention);
        var crossQueryOutWeights = c.IsDecoderOnly ? 0 : queryOutWeights;
        var decoderPerToken = c.DecoderLayers * (6 * (queryOutWeights + keyValueWeights + crossQueryOutWeights + mlpWeights)
            + 12 * (t + s) * attention) + 6 * headWeights;
        var crossKeyValues = c.DecoderLayers * s * 6 * keyValueWeights;
        return encoder + t * decoderPerToken + crossKeyValues;
    }

    /// <summary>
    /// <see cref="TrainingFlopsPerExample"/> divided by the tokens the example feeds (encoder + decoder),
    /// so that tokens/s * this = FLOP/s.
    /// </summary>
    public static double TrainingFlopsPerToken(TransformerConfig c, int encoderLength, int decoderLength) =>
        TrainingFlopsPerExample(c, encoderLength, decoderLength) / (encoderLength + decoderLength);
}
