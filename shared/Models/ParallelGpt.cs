using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// ParallelGPT (p-gpt) of the decoder-variants paper: the embedding is 2d wide; its first half runs through
/// branch A and its second half through branch B (each DecoderLayers / 2 <see cref="GptBlock"/>s of width d), and
/// the outputs mix as <c>w * a + (1 - w) * b</c> with one learned scalar w (initialised to 0.5), then the head.
/// With <see cref="DropWeakerBranch"/> set, eval mode runs only the branch with the larger weight and uses its
/// output alone (its weight renormalised to 1; with the final pre-LN LayerNorm that equals dropping the other term).
/// Training always runs both branches.
/// </summary>
public sealed class ParallelGpt : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    private readonly GptEmbedding embedding;
    private readonly ModuleList<GptBlock> branchA;
    private readonly ModuleList<GptBlock> branchB;
    private readonly Parameter mix;
    private readonly LayerNorm? finalNorm;
    private readonly Linear head;

    public ParallelGpt(TransformerConfig config) : base(nameof(ParallelGpt))
    {
        GptParts.Require(config, ModelArchitecture.ParallelGpt);
        Config = config;
        var perBranch = config.DecoderLayers / 2;
        embedding = new GptEmbedding("embedding", config.VocabSize, config.MaxPositions, 2 * config.DModel, config.Dropout);
        branchA = nn.ModuleList(Enumerable.Range(0, perBranch).Select(i => new GptBlock($"a_{i}", config)).ToArray());
        branchB = nn.ModuleList(Enumerable.Range(0, perBranch).Select(i => new GptBlock($"b_{i}", config)).ToArray());
        mix = new Parameter(tensor(0.5f));
        finalNorm = GptParts.FinalNorm(config, config.DModel);
        head = nn.Linear(config.DModel, config.VocabSize, hasBias: true);
        RegisterComponents();
        WeightInitialization.Apply(this);
        DropWeakerBranch = config.Branches == BranchesAtInference.Stronger;
    }

    public TransformerConfig Config { get; }

    /// <summary>[V, 2d]: both branches' halves side by side.</summary>
    public Tensor EmbeddingWeight => embedding.TokenWeight;

    /// <summary>The learned scalar w: branch A's weight (branch B gets 1 - w).</summary>
    public Parameter BranchWeight => mix;

    /// <summary>The inference option: in eval mode, run only <see cref="StrongerBranch"/>.</summary>
    public bool DropWeakerBranch { get; set; }

    /// <summary>0 for branch A (w >= 0.5), 1 for branch B.</summary>
    public int StrongerBranch => mix.item<float>() >= 0.5f ? 0 : 1;

    /// <param name="tokens">[B, T] int64</param>
    /// <returns>logits [B, T, V]</returns>
    public override Tensor forward(Tensor tokens)
    {
        TokenTensors.RequireBatch(tokens, nameof(tokens));
        var d = Config.DModel;
        var x = embedding.forward(tokens);                 // [B, T, 2d]
        var mask = GptParts.CausalMask(tokens, Config.PadId, x.dtype);
        var a = x.narrow(-1, 0, d);                        // [B, T, d]
        var b = x.narrow(-1, d, d);
        Tensor mixed;
        if (!training && DropWeakerBranch)
            mixed = StrongerBranch == 0 ? Run(branchA, a, mask) : Run(branchB, b, mask);
        else
            mixed = mix * Run(branchA, a, mask) + (1 - mix) * Run(branchB, b, mask);
        return head.forward(finalNorm?.forward(mixed) ?? mixed);
    }

    private static Tensor Run(ModuleList<GptBlock> branch, Tensor x, Tensor mask)
    {
        foreach (var block in branch)
            x = block.forward(x, mask);
        return x;
    }
}
