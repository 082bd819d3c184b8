using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// LinearlyCompressedGPT (lc-gpt) and ConvCompressedGPT (cc-gpt) of the decoder-variants paper:
/// [DecoderLayers / CompressionStages <see cref="GptBlock"/>s -> halve the width] repeated CompressionStages times,
/// then the head at the final width (paper: 2 stages of 2 blocks, 384 -> 192 -> 96). Heads keep their number, so
/// their width halves too; the MLP stays 4x its block. The compressor is a Linear (lc-gpt) or a Conv1d of kernel 1
/// over the sequence (cc-gpt): the same map per position, with the same parameter count.
/// </summary>
public sealed class CompressedGpt : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    private readonly GptEmbedding embedding;
    private readonly ModuleList<GptBlock> blocks;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> compressors;
    private readonly LayerNorm? finalNorm;
    private readonly Linear head;
    private readonly int blocksPerStage;

    public CompressedGpt(TransformerConfig config) : base(nameof(CompressedGpt))
    {
        GptParts.Require(config, ModelArchitecture.LinearlyCompressedGpt, ModelArchitecture.ConvCompressedGpt);
        Config = config;
        var stages = config.CompressionStages;
        blocksPerStage = config.DecoderLayers / stages;
        embedding = new GptEmbedding("embedding", config.VocabSize, config.MaxPositions, config.DModel, config.Dropout);
        var stageBlocks = new List<GptBlock>();
        var stageCompressors = new List<nn.Module<Tensor, Tensor>>();
        for (var stage = 0; stage < stages; stage++)
        {
            var width = config.StageWidth(stage);
            for (var i = 0; i < blocksPerStage; i++)
                stageBlocks.Add(new GptBlock($"stage_{stage}_block_{i}", config.AtWidth(width)));
            stageCompressors.Add(config.Architecture == ModelArchitecture.LinearlyCompressedGpt
                ? new LinearCompressor($"compress_{stage}", width)
                : new ConvCompressor($"compress_{stage}", width));
        }
        blocks = nn.ModuleList(stageBlocks.ToArray());
        compressors = nn.ModuleList(stageCompressors.ToArray());
        var finalWidth = config.StageWidth(stages);
        finalNorm = GptParts.FinalNorm(config, finalWidth);
        head = nn.Linear(finalWidth, config.VocabSize, hasBias: true);
        RegisterComponents();
        WeightInitialization.Apply(this);
    }

    public TransformerConfig Config { get; }

    public Tensor EmbeddingWeight => embedding.TokenWeight;

    /// <summary>Residual widths seen by the head and each stage: d, d/2, ..., d / 2^stages.</summary>
    public IReadOnlyList<int> Widths => Enumerable.Range(0, Config.CompressionStages + 1).Select(Config.StageWidth).ToList();

    /// <param name="tokens">[B, T] int64</param>
    /// <returns>logits [B, T, V]</returns>
    public override Tensor forward(Tensor tokens)
    {
        TokenTensors.RequireBatch(tokens, nameof(tokens));
        var x = embedding.forward(tokens);                  // [B, T, d]
        var mask = GptParts.CausalMask(tokens, Config.PadId, x.dtype);
        for (var stage = 0; stage < compressors.Count; stage++)
        {
            for (var i = 0; i < blocksPerStage; i++)
                x = blocks[stage * blocksPerStage + i].forward(x, mask);
            x = compressors[stage].forward(x);              // [B, T, d / 2^(stage+1)]
        }
        return head.forward(finalNorm?.forward(x) ?? x);
    }
}

/// <summary>lc-gpt's compressor: Linear(width -> width / 2) with bias, per position.</summary>
public sealed class LinearCompressor : nn.Module<Tensor, Tensor>
{
    private readonly Linear projection;

    public LinearCompressor(string name, int width) : base(name)
    {
        projection = nn.Linear(width, width / 2, hasBias: true);
        RegisterComponents();
    }

    /// <param name="x">[B, T, width]</param>
    /// <returns>[B, T, width / 2]</returns>
    public override Tensor forward(Tensor x) => projection.forward(x);
}

/// <summary>cc-gpt's compressor: Conv1d(width -> width / 2, kernel 1) with bias, channels = features, over the sequence.</summary>
public sealed class ConvCompressor : nn.Module<Tensor, Tensor>
{
    private readonly Conv1d convolution;

    public ConvCompressor(string name, int width) : base(name)
    {
        convolution = nn.Conv1d(width, width / 2, kernel_size: 1, bias: true);
        RegisterComponents();
    }

    /// <param name="x">[B, T, width]</param>
    /// <returns>[B, T, width / 2]</returns>
    public override Tensor forward(Tensor x) => convolution.forward(x.transpose(1, 2)).transpose(1, 2);
}
