using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// One Ettin recipe, two models (SPEC.md section 2): token embedding, LayerNorm after it, <see cref="EttinBlock"/>s
/// that alternate global and sliding-window attention (layer i is global when i % GlobalEvery == 0: 0, 3, 6, ...),
/// RoPE with a per-layer base (GlobalRopeTheta for global layers, RopeTheta for local ones), a final LayerNorm, the
/// <see cref="PredictionHead"/> and a decoder tied to the embedding (no bias). No biases anywhere, no absolute
/// positions. <see cref="EttinEncoder"/> attends both ways and trains with MLM; <see cref="EttinDecoder"/> is the
/// same module under a causal mask, trained with CLM. Parameters:
/// V*d + L*(4d^2 + 3*d*I + 2d) + (d^2 + d) + 2d (<see cref="ParameterCount"/>).
/// </summary>
public sealed class EttinTransformer : nn.Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly LayerNorm embeddingNorm;
    private readonly Dropout embeddingDropout;
    private readonly ModuleList<EttinBlock> layers;
    private readonly LayerNorm finalNorm;
    private readonly PredictionHead head;
    private readonly RotaryEmbedding globalRotary;
    private readonly RotaryEmbedding localRotary;

    /// <param name="causal">true for the decoder twin (<see cref="ModelArchitecture.EttinDecoder"/>)</param>
    public EttinTransformer(string name, TransformerConfig config, bool causal) : base(name)
    {
        var architecture = causal ? ModelArchitecture.EttinDecoder : ModelArchitecture.EncoderOnly;
        config.Validate();
        if (config.Architecture != architecture)
            throw new ArgumentException($"TransformerConfig.Architecture = {config.Architecture}: this model is {architecture}.", nameof(config));
        Config = config;
        IsCausal = causal;
        embedding = nn.Embedding(config.VocabSize, config.DModel);
        embeddingNorm = nn.LayerNorm(config.DModel, config.NormEps, bias: false);
        embeddingDropout = nn.Dropout(config.Dropout);
        layers = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(i => new EttinBlock($"layer_{i}", config)).ToArray());
        finalNorm = nn.LayerNorm(config.DModel, config.NormEps, bias: false);
        head = new PredictionHead("head", config);
        globalRotary = new RotaryEmbedding(config.HeadDim, config.GlobalRopeTheta);
        localRotary = new RotaryEmbedding(config.HeadDim, config.RopeTheta);
        RegisterComponents();
        WeightInitialization.Apply(this);
    }

    public TransformerConfig Config { get; }

    /// <summary>True for the decoder: every layer's mask is causal.</summary>
    public bool IsCausal { get; }

    /// <summary>The token embedding matrix [V, d], also the tied decoder.</summary>
    public Tensor EmbeddingWeight =>
        embedding.weight ?? throw new InvalidOperationException("The token embedding has no weight (disposed model?).");

    /// <summary>Layer i attends globally (0, GlobalEvery, 2*GlobalEvery, ...), else through the sliding window.</summary>
    public bool IsGlobalLayer(int layer) => layer % Config.GlobalEvery == 0;

    /// <summary>The additive mask layer <paramref name="layer"/> applies to <paramref name="tokens"/>: [B, 1, T, T].</summary>
    public Tensor AttentionMaskOf(int layer, Tensor tokens, ScalarType dtype = ScalarType.Float32)
    {
        var (globalMask, localMask) = Masks(tokens, dtype);
        return IsGlobalLayer(layer) ? globalMask : localMask;
    }

    /// <summary>Global (full, or causal for the decoder) and sliding-window masks, with padding keys hidden.</summary>
    private (Tensor Global, Tensor Local) Masks(Tensor tokens, ScalarType dtype)
    {
        var isToken = AttentionMask.IsToken(tokens, Config.PadId);
        return (AttentionMask.SelfAttention(isToken, queryOffset: 0, queryLength: tokens.shape[1], IsCausal, dtype),
            AttentionMask.SlidingWindow(isToken, Config.LocalWindow, IsCausal, dtype));
    }

    /// <param name="tokens">[B, T] int64; padding (PadId) is hidden as a key</param>
    /// <returns>logits [B, T, V]</returns>
    public override Tensor forward(Tensor tokens)
    {
        TokenTensors.RequireBatch(tokens, nameof(tokens));
        var length = tokens.shape[1];
        var x = embeddingDropout.forward(embeddingNorm.forward(embedding.forward(tokens)));
        var (globalMask, localMask) = Masks(tokens, x.dtype);
        var globalAngles = globalRotary.Angles(0, length, x.device, x.dtype);
        var localAngles = localRotary.Angles(0, length, x.device, x.dtype);
        for (var i = 0; i < layers.Count; i++)
        {
            var global = IsGlobalLayer(i);
            x = layers[i].forward(x, global ? globalMask : localMask, global ? globalAngles : localAngles);
        }
        return nn.functional.linear(head.forward(finalNorm.forward(x)), EmbeddingWeight);
    }
}

/// <summary>The Ettin encoder: bidirectional attention, trained with masked language modelling.</summary>
public sealed class EttinEncoder : nn.Module<Tensor, Tensor>, IMaskedLanguageModel
{
    private readonly EttinTransformer transformer;

    public EttinEncoder(TransformerConfig config) : base(nameof(EttinEncoder))
    {
        transformer = new EttinTransformer("transformer", config, causal: false);
        RegisterComponents();
    }

    public TransformerConfig Config => transformer.Config;
    public Tensor EmbeddingWeight => transformer.EmbeddingWeight;
    public bool IsGlobalLayer(int layer) => transformer.IsGlobalLayer(layer);
    public Tensor AttentionMaskOf(int layer, Tensor tokens) => transformer.AttentionMaskOf(layer, tokens);

    /// <param name="tokens">[B, T] int64</param>
    /// <returns>logits [B, T, V]</returns>
    public override Tensor forward(Tensor tokens) => transformer.forward(tokens);
}

/// <summary>The Ettin decoder: the encoder's architecture under a causal mask, trained with causal language modelling.</summary>
public sealed class EttinDecoder : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    private readonly EttinTransformer transformer;

    public EttinDecoder(TransformerConfig config) : base(nameof(EttinDecoder))
    {
        transformer = new EttinTransformer("transformer", config, causal: true);
        RegisterComponents();
    }

    public TransformerConfig Config => transformer.Config;
    public Tensor EmbeddingWeight => transformer.EmbeddingWeight;
    public bool IsGlobalLayer(int layer) => transformer.IsGlobalLayer(layer);
    public Tensor AttentionMaskOf(int layer, Tensor tokens) => transformer.AttentionMaskOf(layer, tokens);

    /// <param name="tokens">[B, T] int64</param>
    /// <returns>logits [B, T, V]</returns>
    public override Tensor forward(Tensor tokens) => transformer.forward(tokens);
}
