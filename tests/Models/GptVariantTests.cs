using NUnit.Framework;
using TorchSharp;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Tests.Models;

/// <summary>parallel-gpt's branch mixing and dropping; the compressed variants' stage widths.</summary>
public class GptVariantTests
{
    private static Tensor Tokens() => ModelTensors.Tokens([5, 9, 3, 17, 30, 8, 12, 4], [7, 7, 21, 33, 6, 10, 11, 3]);

    /// <summary>One branch run by hand: the same blocks the model holds, in order.</summary>
    private static ParallelGpt Model(float weight)
    {
        manual_seed(11);
        var model = new ParallelGpt(ZooConfigs.For(ModelArchitecture.ParallelGpt));
        using (no_grad()) model.BranchWeight.fill_(weight);
        model.eval();
        return model;
    }

    [Test]
    public void BranchWeight_NewModel_StartsAtOneHalf()
    {
        using var scope = NewDisposeScope();
        var model = new ParallelGpt(ZooConfigs.For(ModelArchitecture.ParallelGpt));

        Assert.That(model.BranchWeight.item<float>(), Is.EqualTo(0.5f));
        Assert.That(model.EmbeddingWeight.shape, Is.EqualTo(new long[] { ZooConfigs.Vocab, 64 }), "the embedding is 2d wide");
    }

    [TestCase(0.8f, 0)]
    [TestCase(0.2f, 1)]
    public void DropWeakerBranch_InEval_KeepsTheBranchWithTheLargerWeight(float weight, int kept)
    {
        using var scope = NewDisposeScope();
        var model = Model(weight);
        var tokens = Tokens();
        var both = model.forward(tokens);

        model.DropWeakerBranch = true;
        var dropped = model.forward(tokens);
        // Zeroing the weaker branch's weight (w = 1 for A, w = 0 for B) computes the same single-branch output.
        using (no_grad()) model.BranchWeight.fill_(kept == 0 ? 1f : 0f);
        model.DropWeakerBranch = false;
        var onlyKept = model.forward(tokens);

        Assert.That(model.StrongerBranch, Is.EqualTo(kept));
        Assert.That(ModelTensors.MaxAbsDifference(dropped, onlyKept), Is.LessThan(1e-5));
        Assert.That(ModelTensors.MaxAbsDifference(dropped, both), Is.GreaterThan(1e-4), "dropping a branch changes the output");
    }

    [Test]
    public void DropWeakerBranch_InTraining_StillMixesBothBranches()
    {
        using var scope = NewDisposeScope();
        var model = Model(0.7f);
        var tokens = Tokens();
        var both = model.forward(tokens);
        model.DropWeakerBranch = true;

        model.train();
        var training = model.forward(tokens);

        Assert.That(ModelTensors.MaxAbsDifference(training, both), Is.LessThan(1e-6), "dropout is 0, so train and eval agree");
    }

    [Test]
    public void BranchesAtInference_FromConfig_SetsDropWeakerBranch()
    {
        using var scope = NewDisposeScope();
        var model = new ParallelGpt(ZooConfigs.For(ModelArchitecture.ParallelGpt) with { Branches = BranchesAtInference.Stronger });

        Assert.That(model.DropWeakerBranch, Is.True);
    }

    [TestCase(ModelArchitecture.LinearlyCompressedGpt, "LinearCompressor")]
    [TestCase(ModelArchitecture.ConvCompressedGpt, "ConvCompressor")]
    public void CompressedGpt_PaperShape_HalvesTheWidthAfterEachStage(ModelArchitecture architecture, string compressor)
    {
        using var scope = NewDisposeScope();
        var config = new TransformerConfig(VocabSize: 50, DModel: 384, EncoderLayers: 0, DecoderLayers: 4, Heads: 6, KvHeads: 6,
            HeadDim: 64, FfnDim: 1536, Dropout: 0.0, TieEmbeddings: false) { Architecture = architecture, MaxPositions = 8 };
        var model = new CompressedGpt(config);
        var shapes = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);

        Assert.That(model.Widths, Is.EqualTo(new[] { 384, 192, 96 }));
        Assert.Multiple(() =>
        {
            Assert.That(shapes["blocks.0.attention.query.weight"], Is.EqualTo(new long[] { 384, 384 }));
            Assert.That(shapes["blocks.1.mlp.input.weight"], Is.EqualTo(new long[] { 1536, 384 }));
            Assert.That(shapes["blocks.2.attention.query.weight"], Is.EqualTo(new long[] { 192, 192 }), "stage 2 blocks are 192 wide");
            Assert.That(shapes["blocks.3.mlp.input.weight"], Is.EqualTo(new long[] { 768, 192 }), "the MLP stays 4x its block");
            Assert.That(shapes["head.weight"], Is.EqualTo(new long[] { 50, 96 }));
            Assert.That(model.named_modules().Count(m => m.module.GetType().Name == compressor), Is.EqualTo(2));
        });
        var compressors = shapes.Where(p => p.Key.StartsWith("compressors.", StringComparison.Ordinal) && p.Key.EndsWith(".weight", StringComparison.Ordinal))
            .OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Value.Take(2).ToArray()).ToList();
        Assert.That(compressors, Is.EqualTo(new[] { new long[] { 192, 384 }, new long[] { 96, 192 } }));
    }

    [Test]
    public void ConvCompressor_KernelOne_IsTheSameMapAsALinearWithItsWeights()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var conv = new ConvCompressor("c", 8);
        var x = randn(2, 5, 8);
        var parameters = conv.parameters().ToList();
        var weight = parameters.Single(p => p.dim() == 3).squeeze(-1);  // [4, 8, 1] -> [4, 8]
        var bias = parameters.Single(p => p.dim() == 1);

        Assert.That(ModelTensors.MaxAbsDifference(conv.forward(x), nn.functional.linear(x, weight, bias)), Is.LessThan(1e-6));
        Assert.That(conv.forward(x).shape, Is.EqualTo(new long[] { 2, 5, 4 }));
    }

    [Test]
    public void Validate_CompressedWidthNotDivisible_ThrowsNamingDModel()
    {
        var config = ZooConfigs.For(ModelArchitecture.LinearlyCompressedGpt) with { DModel = 36, HeadDim = 18 };

        var error = Assert.Throws<ArgumentException>(config.Validate)!;

        Assert.That(error.ParamName, Is.EqualTo(nameof(TransformerConfig.DModel)));
    }
}
