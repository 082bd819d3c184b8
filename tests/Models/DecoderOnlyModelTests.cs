using NUnit.Framework;
using Training.Shared.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Training.Tests.Models.ModelTensors;

namespace Training.Tests.Models;

public class DecoderOnlyModelTests
{
    private static DecoderOnlyModel Build(MlpKind mlp = MlpKind.GeluTanh)
    {
        manual_seed(2);
        var model = new DecoderOnlyModel(TinyConfigs.DecoderOnly(mlp));
        model.eval();
        return model;
    }

    [TestCase(MlpKind.GeluTanh)]
    [TestCase(MlpKind.SwiGlu)]
    public void Forward_Batch_ReturnsLogitsBatchByLengthByVocab(MlpKind mlp)
    {
        using var scope = NewDisposeScope();
        var model = Build(mlp);
        var logits = model.forward(randint(3, 37, [4, 9], dtype: ScalarType.Int64));
        Assert.That(logits.shape, Is.EqualTo(new long[] { 4, 9, 37 }));
        Assert.That(logits.isfinite().all().item<bool>(), Is.True);
    }

    [Test]
    public void Forward_LeftPaddedPrompt_SameLogitsAsUnpadded()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var unpadded = model.forward(Tokens([5, 6, 7, 8]));
        var padded = model.forward(Tokens([0, 0, 0, 5, 6, 7, 8]));
        // RoPE is relative, so shifting every real token by three positions changes only rounding.
        Assert.That(MaxAbsDifference(padded.narrow(1, 3, 4), unpadded), Is.LessThan(1e-5));
    }

    [Test]
    public void Forward_PadContentChanged_RealPositionsUnchanged()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var tokens = Tokens([0, 0, 5, 6, 7], [8, 9, 10, 11, 12]);
        var before = model.forward(tokens);
        EncoderDecoderModelTests.ChangePadEmbedding(model);
        var after = model.forward(tokens);

        Assert.That(MaxAbsDifference(before.narrow(2, 1, 36).narrow(1, 2, 3), after.narrow(2, 1, 36).narrow(1, 2, 3)), Is.LessThan(1e-6));
        Assert.That(MaxAbsDifference(before.narrow(2, 1, 36).select(0, 1), after.narrow(2, 1, 36).select(0, 1)), Is.LessThan(1e-6));
        Assert.That(MaxAbsDifference(before.select(1, 0), after.select(1, 0)), Is.GreaterThan(1e-4));
    }

    [Test]
    public void Forward_FutureToken_DoesNotChangeEarlierLogits()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var original = model.forward(Tokens([5, 6, 7, 8, 9, 10]));
        var changed = model.forward(Tokens([5, 6, 7, 8, 30, 31]));
        Assert.That(MaxAbsDifference(original.narrow(1, 0, 4), changed.narrow(1, 0, 4)), Is.LessThan(1e-6));
        Assert.That(MaxAbsDifference(original.narrow(1, 4, 2), changed.narrow(1, 4, 2)), Is.GreaterThan(1e-3));
    }

    [Test]
    public void DecodeNext_PromptThenSteps_MatchesFullForward()
    {
        using var scope = NewDisposeScope();
        var model = Build().to(ScalarType.Float64);
        var tokens = Tokens([0, 0, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16]);
        var full = model.forward(tokens);

        using var state = model.StartDecoding(2, capacity: 7);
        var afterPrompt = model.DecodeNext(tokens.narrow(1, 0, 4), state);
        Assert.That(MaxAbsDifference(afterPrompt, full.select(1, 3)), Is.LessThan(1e-10));
        for (var t = 4; t < 7; t++)
            Assert.That(MaxAbsDifference(model.DecodeNext(tokens.narrow(1, t, 1), state), full.select(1, t)), Is.LessThan(1e-10), $"position {t}");
    }

    [Test]
    public void Constructor_EncoderDecoderConfig_ThrowsNamingEncoderLayers()
    {
        var error = Assert.Throws<ArgumentException>(() => new DecoderOnlyModel(TinyConfigs.EncoderDecoder()))!;
        Assert.That(error.Message, Does.Contain("EncoderLayers = 2"));
    }
}
