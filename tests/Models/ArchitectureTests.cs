using NUnit.Framework;
using TorchSharp;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Tests.Models;

/// <summary>Every architecture: output shapes, and which input positions each output position depends on.</summary>
public class ArchitectureTests
{
    private static IEnumerable<ModelArchitecture> AllArchitectures => ZooConfigs.All;
    private static IEnumerable<ModelArchitecture> CausalArchitectures => ZooConfigs.Causal;

    private static Tensor RandomTokens(int batch, int length, int seed)
    {
        var random = new Random(seed);
        return ModelTensors.Tokens(Enumerable.Range(0, batch)
            .Select(_ => Enumerable.Range(0, length).Select(_ => (long)random.Next(3, ZooConfigs.Vocab)).ToArray()).ToArray());
    }

    private static Tensor Logits(ILanguageModel model, Tensor tokens) => model switch
    {
        EncoderDecoderModel encoderDecoder => encoderDecoder.forward(tokens, tokens),
        ICausalLanguageModel causal => causal.forward(tokens),
        IMaskedLanguageModel masked => masked.forward(tokens),
        _ => throw new ArgumentException(model.GetType().Name),
    };

    [TestCaseSource(nameof(AllArchitectures))]
    public void Forward_EveryArchitecture_GivesLogitsPerPositionOverTheVocabulary(ModelArchitecture architecture)
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var config = ZooConfigs.For(architecture);
        var model = ModelFactory.Create(config);
        ((nn.Module)model).eval();

        var logits = Logits(model, RandomTokens(batch: 3, length: ZooConfigs.Context, seed: 2));

        Assert.That(model.Config.Architecture, Is.EqualTo(architecture));
        Assert.That(logits.shape, Is.EqualTo(new long[] { 3, ZooConfigs.Context, ZooConfigs.Vocab }));
        Assert.That(logits.isfinite().all().item<bool>(), Is.True);
    }

    /// <summary>Changing the token at position j must change the logits at j and after, and nothing before j.</summary>
    [TestCaseSource(nameof(CausalArchitectures))]
    public void Forward_CausalArchitecture_PositionDependsOnlyOnItselfAndEarlierTokens(ModelArchitecture architecture)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var model = (ICausalLanguageModel)ModelFactory.Create(ZooConfigs.For(architecture));
        ((nn.Module)model).eval();
        using var _ = no_grad();
        const int length = 10;
        var tokens = RandomTokens(batch: 1, length, seed: 4);
        var baseline = model.forward(tokens);

        for (var changed = 0; changed < length; changed++)
        {
            var edited = tokens.clone();
            edited[0, changed] = tensor(((tokens[0, changed].item<long>() - 3 + 7) % (ZooConfigs.Vocab - 3)) + 3);
            var difference = (model.forward(edited) - baseline).abs().amax([0, 2]); // [T]: largest change per position
            for (var position = 0; position < length; position++)
            {
                var moved = difference[position].item<float>();
                if (position < changed)
                    Assert.That(moved, Is.EqualTo(0f), $"{architecture}: position {position} saw the change at {changed}");
                else if (position == changed)
                    Assert.That(moved, Is.GreaterThan(1e-6f), $"{architecture}: position {position} ignored its own token");
            }
        }
    }

    [TestCase(ModelArchitecture.EncoderOnly)]
    [TestCase(ModelArchitecture.EncoderDecoder)]
    public void Forward_BidirectionalEncoder_FirstPositionSeesTheLastToken(ModelArchitecture architecture)
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var model = ModelFactory.Create(ZooConfigs.For(architecture));
        ((nn.Module)model).eval();
        using var _ = no_grad();
        var tokens = RandomTokens(batch: 1, length: 12, seed: 6);
        var edited = tokens.clone();
        edited[0, 11] = tensor(tokens[0, 11].item<long>() == 3 ? 4L : 3L);

        Tensor FirstPosition(Tensor input) => architecture == ModelArchitecture.EncoderDecoder
            ? ((EncoderDecoderModel)model).Encode(input)[0, 0]
            : ((EttinEncoder)model).forward(input)[0, 0];

        Assert.That(ModelTensors.MaxAbsDifference(FirstPosition(tokens), FirstPosition(edited)), Is.GreaterThan(1e-6));
    }

    [Test]
    public void Gpt_InputLongerThanMaxPositions_ThrowsNamingMaxPositions()
    {
        using var scope = NewDisposeScope();
        var model = new Gpt(ZooConfigs.For(ModelArchitecture.Gpt));

        var error = Assert.Throws<ArgumentException>(() => model.forward(RandomTokens(1, ZooConfigs.Context + 1, seed: 7)))!;

        Assert.That(error.Message, Does.Contain("max_positions").And.Contain($"{ZooConfigs.Context + 1} positions"));
    }

    [Test]
    public void Gpt_PostNorm_HasNoFinalNormAndDiffersFromPreNorm()
    {
        using var scope = NewDisposeScope();
        manual_seed(8);
        var pre = new Gpt(ZooConfigs.Gpt(ModelArchitecture.Gpt, NormPosition.Pre));
        manual_seed(8);
        var post = new Gpt(ZooConfigs.Gpt(ModelArchitecture.Gpt, NormPosition.Post));
        pre.eval();
        post.eval();
        var tokens = RandomTokens(2, 8, seed: 9);

        Assert.That(ParameterCount.Count(pre) - ParameterCount.Count(post), Is.EqualTo(2 * 32), "pre-LN adds a final LayerNorm (weight and bias)");
        Assert.That(post.named_parameters().Select(p => p.name), Has.None.StartsWith("finalNorm"));
        Assert.That(ModelTensors.MaxAbsDifference(pre.forward(tokens), post.forward(tokens)), Is.GreaterThan(1e-4));
    }

    [Test]
    public void Ettin_LayersAlternate_EveryThirdGlobalFromLayerZero()
    {
        using var scope = NewDisposeScope();
        var config = ZooConfigs.Ettin(ModelArchitecture.EncoderOnly) with { EncoderLayers = 7 };
        var model = new EttinEncoder(config);

        var global = Enumerable.Range(0, 7).Where(model.IsGlobalLayer).ToArray();

        Assert.That(global, Is.EqualTo(new[] { 0, 3, 6 }));
    }

    [TestCase(ModelArchitecture.EncoderOnly, false)]
    [TestCase(ModelArchitecture.EttinDecoder, true)]
    public void Ettin_LayerMasks_GlobalLayersSeeEverythingLocalLayersTheWindow(ModelArchitecture architecture, bool causal)
    {
        using var scope = NewDisposeScope();
        var config = ZooConfigs.Ettin(architecture) with { LocalWindow = 4 };
        var model = (nn.Module)ModelFactory.Create(config);
        Func<int, Tensor, Tensor> maskOf = model is EttinEncoder encoder ? encoder.AttentionMaskOf : ((EttinDecoder)model).AttentionMaskOf;
        const int length = 9;
        var tokens = RandomTokens(1, length, seed: 10);

        for (var layer = 0; layer < config.Layers; layer++)
        {
            var visible = maskOf(layer, tokens).eq(0)[0, 0]; // [T, T] bool
            for (var i = 0; i < length; i++)
            for (var j = 0; j < length; j++)
            {
                var inWindow = causal ? i - j is >= 0 and < 4 : Math.Abs(i - j) <= 2;
                var expected = layer % 3 == 0 ? !causal || j <= i : inWindow;
                Assert.That(visible[i, j].item<bool>(), Is.EqualTo(expected), $"{architecture} layer {layer}: query {i}, key {j}");
            }
        }
    }
}
