using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// The decoder-only twin: the same embedding, blocks (without cross-attention), final RMSNorm and tied head.
/// Configured with EncoderLayers = 0 and DecoderLayers = number of layers. Batched prompts are left-padded;
/// RoPE is relative, so left padding does not shift what real tokens see.
/// </summary>
public sealed class DecoderOnlyModel : nn.Module<Tensor, Tensor>, ITiedHeadCausalModel
{
    private readonly Embedding embedding;
    private readonly ModuleList<DecoderOnlyBlock> layers;
    private readonly RmsNorm finalNorm;
    private readonly Linear? untiedHead;
    private readonly RotaryEmbedding rotary;

    public DecoderOnlyModel(TransformerConfig config) : base(nameof(DecoderOnlyModel))
    {
        config.Validate();
        if (config.EncoderLayers != 0)
            throw new ArgumentException(
                $"TransformerConfig.EncoderLayers = {config.EncoderLayers}: a DecoderOnlyModel takes EncoderLayers = 0 and all layers in DecoderLayers.",
                nameof(config));
        if (config.Architecture != ModelArchitecture.DecoderOnly)
            throw new ArgumentException($"TransformerConfig.Architecture = {config.Architecture}: this model is DecoderOnly.", nameof(config));
        Config = config;
        embedding = nn.Embedding(config.VocabSize, config.DModel);
        layers = nn.ModuleList(Enumerable.Range(0, config.DecoderLayers)
            .Select(i => new DecoderOnlyBlock($"layer_{i}", config)).ToArray());
        finalNorm = new RmsNorm("final_norm", config.DModel, config.NormEps);
        untiedHead = config.TieEmbeddings ? null : nn.Linear(config.DModel, config.VocabSize, hasBias: false);
        rotary = new RotaryEmbedding(config.HeadDim, config.RopeTheta);
        RegisterComponents();
        WeightInitialization.Apply(this);
    }

    public TransformerConfig Config { get; }

    /// <summary>The token embedding matrix [V, d], also the tied LM head.</summary>
    public Tensor EmbeddingWeight =>
        embedding.weight ?? throw new InvalidOperationException("The token embedding has no weight (disposed model?).");

    public bool HeadIsTied => untiedHead is null;

    /// <param name="tokens">[B, T] int64, padding (PadId) masked as keys</param>
    /// <returns>logits [B, T, V]</returns>
    public override Tensor forward(Tensor tokens) => Logits(Hidden(tokens));

    /// <summary>Logits with the keys to attend given, instead of read off the pad id (a teacher fed another tokenizer's padding).</summary>
    /// <param name="keyIsToken">[B, T] bool: false for padding, which no position attends to</param>
    public Tensor forward(Tensor tokens, Tensor keyIsToken) => Logits(Hidden(tokens, keyIsToken));

    /// <inheritdoc />
    public Tensor Hidden(Tensor tokens) => Hidden(tokens, AttentionMask.IsToken(tokens, Config.PadId));

    private Tensor Hidden(Tensor tokens, Tensor keyIsToken)
    {
        TokenTensors.RequireBatch(tokens, nameof(tokens));
        var x = embedding.forward(tokens);
        var mask = AttentionMask.SelfAttention(keyIsToken,
            queryOffset: 0, queryLength: tokens.shape[1], causal: true, x.dtype);
        var angles = rotary.Angles(0, tokens.shape[1], x.device, x.dtype);
        foreach (var layer in layers)
            x = layer.forward(x, mask, angles);
        return finalNorm.forward(x);
    }

    /// <summary>Allocates per-layer KV caches for <paramref name="capacity"/> positions (prompt plus new tokens).</summary>
    public DecodingState StartDecoding(long batchSize, int capacity)
    {
        var parameter = EmbeddingWeight;
        var caches = layers.Select(_ => new KeyValueCache(batchSize, Config.KvHeads, capacity, Config.HeadDim,
            parameter.device, parameter.dtype)).ToArray();
        return new DecodingState(batchSize, capacity, caches, parameter.device);
    }

    /// <summary>Feeds tokens at positions state.Length.. (the whole prompt first, then one token per step).</summary>
    /// <param name="tokens">[B, T] int64</param>
    /// <returns>logits [B, V] predicting the token after the last one fed</returns>
    public Tensor DecodeNext(Tensor tokens, DecodingState state)
    {
        TokenTensors.RequireBatch(tokens, nameof(tokens));
        if (state.CrossKeysValues is not null)
            throw new ArgumentException("This DecodingState was started by an EncoderDecoderModel.", nameof(state));
        var offset = state.Length;
        var length = tokens.shape[1];
        var keyIsToken = state.Record(tokens, Config.PadId);
        var x = embedding.forward(tokens);
        var mask = AttentionMask.SelfAttention(keyIsToken, offset, length, causal: true, x.dtype);
        var angles = rotary.Angles(offset, length, x.device, x.dtype);
        for (var i = 0; i < layers.Count; i++)
            x = layers[i].forward(x, mask, angles, state.Layer(i));
        state.Advance(length);
        return Logits(finalNorm.forward(x.select(1, length - 1)));
    }

    private Tensor Logits(Tensor hidden) =>
        untiedHead is null ? nn.functional.linear(hidden, EmbeddingWeight) : untiedHead.forward(hidden);
}
