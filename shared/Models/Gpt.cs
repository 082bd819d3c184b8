using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// The baseline GPT of the decoder-variants paper (SPEC.md section 3): token + learned position embeddings,
/// a stack of <see cref="GptBlock"/>s (pre- or post-LN), a final LayerNorm when pre-LN (post-LN blocks already
/// end normalised), and an untied Linear head with bias. Paper size: d 384, 4 blocks, 6 heads, context 256.
/// </summary>
public sealed class Gpt : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    private readonly GptEmbedding embedding;
    private readonly ModuleList<GptBlock> blocks;
    private readonly LayerNorm? finalNorm;
    private readonly Linear head;

    public Gpt(TransformerConfig config) : base(nameof(Gpt))
    {
        GptParts.Require(config, ModelArchitecture.Gpt);
        Config = config;
        embedding = new GptEmbedding("embedding", config.VocabSize, config.MaxPositions, config.DModel, config.Dropout);
        blocks = nn.ModuleList(Enumerable.Range(0, config.DecoderLayers).Select(i => new GptBlock($"block_{i}", config)).ToArray());
        finalNorm = GptParts.FinalNorm(config, config.DModel);
        head = nn.Linear(config.DModel, config.VocabSize, hasBias: true);
        RegisterComponents();
        WeightInitialization.Apply(this);
    }

    public TransformerConfig Config { get; }

    public Tensor EmbeddingWeight => embedding.TokenWeight;

    /// <param name="tokens">[B, T] int64, T at most MaxPositions</param>
    /// <returns>logits [B, T, V]</returns>
    public override Tensor forward(Tensor tokens)
    {
        TokenTensors.RequireBatch(tokens, nameof(tokens));
        var x = embedding.forward(tokens);
        var mask = GptParts.CausalMask(tokens, Config.PadId, x.dtype);
        foreach (var block in blocks)
            x = block.forward(x, mask);
        return head.forward(finalNorm?.forward(x) ?? x);
    }
}

/// <summary>What the GPT variants share besides their blocks.</summary>
internal static class GptParts
{
    public static void Require(TransformerConfig config, params ModelArchitecture[] architectures)
    {
        config.Validate();
        if (!architectures.Contains(config.Architecture))
            throw new ArgumentException(
                $"TransformerConfig.Architecture = {config.Architecture}: this model is {string.Join(" or ", architectures)}.", nameof(config));
    }

    /// <summary>Pre-LN stacks end with a LayerNorm before the head; post-LN stacks already end normalised.</summary>
    public static LayerNorm? FinalNorm(TransformerConfig config, int width) =>
        config.NormPosition == NormPosition.Pre ? nn.LayerNorm(width, config.NormEps) : null;

    /// <returns>additive [B, 1, T, T]</returns>
    public static Tensor CausalMask(Tensor tokens, long padId, ScalarType dtype) =>
        AttentionMask.SelfAttention(AttentionMask.IsToken(tokens, padId), queryOffset: 0, queryLength: tokens.shape[1], causal: true, dtype);
}
