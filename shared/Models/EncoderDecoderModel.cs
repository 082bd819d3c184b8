using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// The encoder-decoder small LM of "Return of the Encoder" (SPEC.md section 1): a shared token embedding,
/// a bidirectional encoder stack and a causal decoder stack with cross-attention, a final RMSNorm after each
/// stack, and an LM head tied to the embedding (no bias, no scaling).
/// </summary>
public sealed class EncoderDecoderModel : nn.Module<Tensor, Tensor, Tensor>, ILanguageModel
{
    private readonly Embedding embedding;
    private readonly ModuleList<EncoderBlock> encoder;
    private readonly RmsNorm encoderNorm;
    private readonly ModuleList<DecoderBlock> decoder;
    private readonly RmsNorm decoderNorm;
    private readonly Linear? untiedHead;
    private readonly RotaryEmbedding rotary;

    public EncoderDecoderModel(TransformerConfig config) : base(nameof(EncoderDecoderModel))
    {
        config.Validate();
        if (config.EncoderLayers == 0)
            throw new ArgumentException(
                "TransformerConfig.EncoderLayers = 0 describes the decoder-only twin; an EncoderDecoderModel needs at least one encoder layer.",
                nameof(config));
        if (config.Architecture != ModelArchitecture.EncoderDecoder)
            throw new ArgumentException($"TransformerConfig.Architecture = {config.Architecture}: this model is EncoderDecoder.", nameof(config));
        Config = config;
        embedding = nn.Embedding(config.VocabSize, config.DModel);
        encoder = nn.ModuleList(Enumerable.Range(0, config.EncoderLayers)
            .Select(i => new EncoderBlock($"encoder_{i}", config)).ToArray());
        encoderNorm = new RmsNorm("encoder_norm", config.DModel, config.NormEps);
        decoder = nn.ModuleList(Enumerable.Range(0, config.DecoderLayers)
            .Select(i => new DecoderBlock($"decoder_{i}", config)).ToArray());
        decoderNorm = new RmsNorm("decoder_norm", config.DModel, config.NormEps);
        untiedHead = config.TieEmbeddings ? null : nn.Linear(config.DModel, config.VocabSize, hasBias: false);
        rotary = new RotaryEmbedding(config.HeadDim, config.RopeTheta);
        RegisterComponents();
        WeightInitialization.Apply(this);
    }

    public TransformerConfig Config { get; }

    /// <summary>The token embedding matrix [V, d], also the tied LM head.</summary>
    public Tensor EmbeddingWeight =>
        embedding.weight ?? throw new InvalidOperationException("The token embedding has no weight (disposed model?).");

    /// <summary>Teacher-forced pass.</summary>
    /// <param name="encoderInput">[B, S] int64, padded with PadId</param>
    /// <param name="decoderInput">[B, T] int64, [BOS] + target[:-1], padded with PadId</param>
    /// <returns>logits [B, T, V]</returns>
    public override Tensor forward(Tensor encoderInput, Tensor decoderInput)
    {
        var memory = Encode(encoderInput);
        return Decode(decoderInput, memory, AttentionMask.IsToken(encoderInput, Config.PadId));
    }

    /// <summary>
    /// The teacher-forced pass that also records the vectors of the last layer's attention modules asked for
    /// (MiniEnD's relations); the logits are those of <see cref="forward"/>.
    /// </summary>
    /// <returns>logits [B, T, V] and one probe per module asked for (null for the others)</returns>
    public (Tensor Logits, LastLayerAttention Attention) ForwardCapturing(Tensor encoderInput, Tensor decoderInput,
        bool encoderSelf, bool decoderSelf, bool cross)
    {
        var attention = new LastLayerAttention(encoderSelf ? new AttentionProbe() : null,
            decoderSelf ? new AttentionProbe() : null, cross ? new AttentionProbe() : null);
        var last = decoder[^1];
        encoder[^1].SelfAttention.Probe = attention.EncoderSelf;
        last.SelfAttention.Probe = attention.DecoderSelf;
        last.CrossAttention.Probe = attention.Cross;
        try
        {
            return (forward(encoderInput, decoderInput), attention);
        }
        finally
        {
            encoder[^1].SelfAttention.Probe = null;
            last.SelfAttention.Probe = null;
            last.CrossAttention.Probe = null;
        }
    }

    /// <summary>Runs the encoder stack once.</summary>
    /// <param name="encoderInput">[B, S] int64</param>
    /// <returns>final-normed memory [B, S, d]</returns>
    public Tensor Encode(Tensor encoderInput)
    {
        TokenTensors.RequireBatch(encoderInput, nameof(encoderInput));
        var x = embedding.forward(encoderInput);
        var mask = AttentionMask.SelfAttention(AttentionMask.IsToken(encoderInput, Config.PadId),
            queryOffset: 0, queryLength: encoderInput.shape[1], causal: false, x.dtype);
        var angles = rotary.Angles(0, encoderInput.shape[1], x.device, x.dtype);
        foreach (var block in encoder)
            x = block.forward(x, mask, angles);
        return encoderNorm.forward(x);
    }

    /// <summary>Teacher-forced decoder pass over an already encoded input.</summary>
    /// <param name="decoderInput">[B, T] int64</param>
    /// <param name="memory">[B, S, d] from <see cref="Encode"/></param>
    /// <param name="memoryIsToken">[B, S] bool, false at encoder padding</param>
    /// <returns>logits [B, T, V]</returns>
    public Tensor Decode(Tensor decoderInput, Tensor memory, Tensor memoryIsToken)
    {
        TokenTensors.RequireBatch(decoderInput, nameof(decoderInput));
        var length = decoderInput.shape[1];
        var x = embedding.forward(decoderInput);
        var selfMask = AttentionMask.SelfAttention(AttentionMask.IsToken(decoderInput, Config.PadId),
            queryOffset: 0, queryLength: length, causal: true, x.dtype);
        var crossMask = AttentionMask.CrossAttention(memoryIsToken, length, x.dtype);
        var angles = rotary.Angles(0, length, x.device, x.dtype);
        foreach (var block in decoder)
            x = block.forward(x, memory, selfMask, crossMask, angles);
        return Logits(decoderNorm.forward(x));
    }

    /// <summary>
    /// Encodes the input once and projects every decoder layer's cross-attention keys/values once; the
    /// returned state then caches decoder self-attention for up to <paramref name="capacity"/> decoder positions.
    /// </summary>
    public DecodingState StartDecoding(Tensor encoderInput, int capacity)
    {
        var memory = Encode(encoderInput);
        var crossKeysValues = decoder.Select(block => block.CrossKeysValues(memory)).ToArray();
        var batch = encoderInput.shape[0];
        var caches = decoder.Select(_ => new KeyValueCache(batch, Config.KvHeads, capacity, Config.HeadDim,
            memory.device, memory.dtype)).ToArray();
        return new DecodingState(batch, capacity, caches, memory.device, crossKeysValues,
            AttentionMask.IsToken(encoderInput, Config.PadId));
    }

    /// <summary>Feeds new decoder tokens at positions state.Length.. and returns the logits after the last one.</summary>
    /// <param name="decoderTokens">[B, T] int64 (T = 1 per generation step)</param>
    /// <returns>logits [B, V] predicting the token after the last one fed</returns>
    public Tensor DecodeNext(Tensor decoderTokens, DecodingState state)
    {
        TokenTensors.RequireBatch(decoderTokens, nameof(decoderTokens));
        if (state.CrossKeysValues is null || state.MemoryIsToken is null)
            throw new ArgumentException("This DecodingState was not started by an EncoderDecoderModel.", nameof(state));
        var offset = state.Length;
        var length = decoderTokens.shape[1];
        var keyIsToken = state.Record(decoderTokens, Config.PadId);
        var x = embedding.forward(decoderTokens);
        var selfMask = AttentionMask.SelfAttention(keyIsToken, offset, length, causal: true, x.dtype);
        var crossMask = AttentionMask.CrossAttention(state.MemoryIsToken, length, x.dtype);
        var angles = rotary.Angles(offset, length, x.device, x.dtype);
        for (var i = 0; i < decoder.Count; i++)
        {
            var (keys, values) = state.CrossKeysValues[i];
            x = decoder[i].Step(x, selfMask, angles, state.Layer(i), keys, values, crossMask);
        }
        state.Advance(length);
        return Logits(decoderNorm.forward(x.select(1, length - 1)));
    }

    /// <summary>[..., d] -> [..., V]; the tied head reuses the embedding matrix.</summary>
    private Tensor Logits(Tensor hidden) =>
        untiedHead is null ? nn.functional.linear(hidden, EmbeddingWeight) : untiedHead.forward(hidden);
}

/// <summary>What <see cref="EncoderDecoderModel.ForwardCapturing"/> recorded of the last encoder and decoder layers.</summary>
public sealed record LastLayerAttention(AttentionProbe? EncoderSelf, AttentionProbe? DecoderSelf, AttentionProbe? Cross);
