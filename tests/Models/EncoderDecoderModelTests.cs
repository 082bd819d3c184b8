using NUnit.Framework;
using Training.Shared.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Training.Tests.Models.ModelTensors;

namespace Training.Tests.Models;

public class EncoderDecoderModelTests
{
    private static EncoderDecoderModel Build(int seed = 1)
    {
        manual_seed(seed);
        var model = new EncoderDecoderModel(TinyConfigs.EncoderDecoder());
        model.eval();
        return model;
    }

    [Test]
    public void Forward_Batch_ReturnsLogitsBatchByTargetByVocab()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var encoder = randint(3, 37, [3, 7], dtype: ScalarType.Int64);
        var decoder = randint(3, 37, [3, 5], dtype: ScalarType.Int64);

        Assert.That(model.forward(encoder, decoder).shape, Is.EqualTo(new long[] { 3, 5, 37 }));
        Assert.That(model.Encode(encoder).shape, Is.EqualTo(new long[] { 3, 7, 32 }));
    }

    [Test]
    public void Forward_EncoderPadding_SameLogitsAsUnpaddedInput()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var decoder = Tokens([TinyConfigs.Bos, 9, 10, 11]);
        var unpadded = model.forward(Tokens([5, 6, 7, 8]), decoder);
        var padded = model.forward(Tokens([5, 6, 7, 8, 0, 0, 0]), decoder);
        var changedReal = model.forward(Tokens([5, 6, 7, 9, 0, 0, 0]), decoder);

        Assert.That(MaxAbsDifference(padded, unpadded), Is.LessThan(1e-5));
        Assert.That(MaxAbsDifference(changedReal, unpadded), Is.GreaterThan(1e-3), "a real encoder token must matter");
    }

    [Test]
    public void Forward_EncoderPadding_RowsDoNotInfluenceEachOther()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var alone = model.forward(Tokens([5, 6, 0, 0]), Tokens([TinyConfigs.Bos, 9]));
        var batched = model.forward(Tokens([5, 6, 0, 0], [20, 21, 22, 23]), Tokens([TinyConfigs.Bos, 9], [TinyConfigs.Bos, 30]));
        Assert.That(MaxAbsDifference(batched.narrow(0, 0, 1), alone), Is.LessThan(1e-5));
    }

    [Test]
    public void Forward_PadContentChanged_RealPositionsUnchanged()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        // A pad at the end of the encoder input and one inside the decoder input (position 1).
        var encoder = Tokens([5, 6, 7, 0, 0], [8, 9, 10, 11, 12]);
        var decoder = Tokens([TinyConfigs.Bos, 0, 12, 13], [TinyConfigs.Bos, 14, 15, 16]);
        var before = model.forward(encoder, decoder);
        ChangePadEmbedding(model);
        var after = model.forward(encoder, decoder);

        // Ignore column 0: the tied head scores the pad token with the changed embedding row itself.
        var realQueries = new long[] { 0, 2, 3 };
        var beforeReal = before.narrow(2, 1, 36).index_select(1, tensor(realQueries));
        var afterReal = after.narrow(2, 1, 36).index_select(1, tensor(realQueries));
        Assert.That(MaxAbsDifference(beforeReal, afterReal), Is.LessThan(1e-6));
        Assert.That(MaxAbsDifference(before.select(1, 1), after.select(1, 1)), Is.GreaterThan(1e-4),
            "the pad query itself reads its own (changed) embedding, so the change did reach the model");
    }

    private static bool IsNorm(string parameterName) => parameterName.Contains("norm", StringComparison.OrdinalIgnoreCase);

    internal static void ChangePadEmbedding(ILanguageModel model)
    {
        using var noGrad = no_grad();
        var weight = model.EmbeddingWeight;
        weight.select(0, TinyConfigs.Pad).add_(randn(weight.shape[1]));
    }

    [Test]
    public void Forward_FutureDecoderToken_DoesNotChangeEarlierLogits()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var encoder = Tokens([5, 6, 7, 8, 9]);
        var original = model.forward(encoder, Tokens([TinyConfigs.Bos, 10, 11, 12, 13]));
        var changed = model.forward(encoder, Tokens([TinyConfigs.Bos, 10, 11, 30, 31]));

        Assert.That(MaxAbsDifference(original.narrow(1, 0, 3), changed.narrow(1, 0, 3)), Is.LessThan(1e-6));
        Assert.That(MaxAbsDifference(original.narrow(1, 3, 2), changed.narrow(1, 3, 2)), Is.GreaterThan(1e-3));
    }

    [Test]
    public void Forward_LastEncoderToken_ChangesEveryDecoderPosition()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var decoder = Tokens([TinyConfigs.Bos, 10, 11]);
        var original = model.forward(Tokens([5, 6, 7, 8]), decoder);
        var changed = model.forward(Tokens([5, 6, 7, 30]), decoder);
        var perPosition = (original - changed).abs().amax([0, 2]);
        Assert.That(perPosition.min().item<float>(), Is.GreaterThan(1e-4f), "the encoder is bidirectional and every decoder step cross-attends");
    }

    [Test]
    public void DecodeNext_StepByStep_MatchesTeacherForcedLogits()
    {
        using var scope = NewDisposeScope();
        var model = Build().to(ScalarType.Float64);
        var encoder = Tokens([5, 6, 7, 8, 0], [9, 10, 11, 12, 13]);
        var decoder = Tokens([TinyConfigs.Bos, 14, 15, 16], [TinyConfigs.Bos, 17, 18, 19]);
        var full = model.forward(encoder, decoder);

        using var state = model.StartDecoding(encoder, capacity: 4);
        var first = model.DecodeNext(decoder.narrow(1, 0, 2), state); // two positions at once, then one at a time
        Assert.That(MaxAbsDifference(first, full.select(1, 1)), Is.LessThan(1e-10));
        for (var t = 2; t < 4; t++)
        {
            var step = model.DecodeNext(decoder.narrow(1, t, 1), state);
            Assert.That(MaxAbsDifference(step, full.select(1, t)), Is.LessThan(1e-10), $"position {t}");
        }
        Assert.That(state.Length, Is.EqualTo(4));
        Assert.Throws<InvalidOperationException>(() => model.DecodeNext(decoder.narrow(1, 0, 1), state));
    }

    [Test]
    public void Forward_TrainMode_AppliesDropoutAndEvalModeIsDeterministic()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var model = new EncoderDecoderModel(TinyConfigs.EncoderDecoder() with { Dropout = 0.1 });
        var encoder = Tokens([5, 6, 7, 8]);
        var decoder = Tokens([TinyConfigs.Bos, 9, 10]);

        model.train();
        var trainA = model.forward(encoder, decoder);
        var trainB = model.forward(encoder, decoder);
        model.eval();
        var evalA = model.forward(encoder, decoder);
        var evalB = model.forward(encoder, decoder);

        Assert.That(MaxAbsDifference(trainA, trainB), Is.GreaterThan(1e-6));
        Assert.That(MaxAbsDifference(evalA, evalB), Is.EqualTo(0));
    }

    [Test]
    public void Constructor_DecoderOnlyConfig_ThrowsNamingEncoderLayers()
    {
        var error = Assert.Throws<ArgumentException>(() => new EncoderDecoderModel(TinyConfigs.DecoderOnly()))!;
        Assert.That(error.Message, Does.Contain("EncoderLayers = 0"));
    }

    [Test]
    public void Forward_WrongDtype_ThrowsNamingArgument()
    {
        using var scope = NewDisposeScope();
        var model = Build();
        var error = Assert.Throws<ArgumentException>(() => model.forward(zeros(2, 3), Tokens([1, 2])))!;
        Assert.That(error.ParamName, Is.EqualTo("encoderInput"));
    }

    [Test]
    public void Initialization_FollowsReference_NormalWeightsZeroBiasesUnitNorms()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var model = new EncoderDecoderModel(TinyConfigs.EncoderDecoder() with { DModel = 64, FfnDim = 256, VocabSize = 512 });
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);

        Assert.Multiple(() =>
        {
            Assert.That(parameters.Keys.Count(k => k.EndsWith("weight") && IsNorm(k)), Is.EqualTo(2 * 2 + 3 * 2 + 2));
            foreach (var (name, p) in parameters)
            {
                if (IsNorm(name))
                    Assert.That(p.eq(1).all().item<bool>(), Is.True, name);
                else if (name.EndsWith("bias"))
                    Assert.That(p.eq(0).all().item<bool>(), Is.True, name);
                else
                    Assert.That(p.std().item<float>(), Is.EqualTo(0.02f).Within(0.003f), name);
            }
        });
    }

    [Test]
    public void SaveLoad_IntoFreshModel_ReproducesLogits()
    {
        using var scope = NewDisposeScope();
        var model = Build(seed: 5);
        var encoder = Tokens([5, 6, 7, 0]);
        var decoder = Tokens([TinyConfigs.Bos, 8, 9]);
        var expected = model.forward(encoder, decoder);

        var saved = new MemoryStream();
        model.save(saved); // closes the stream; its buffer stays readable
        var restored = Build(seed: 6);
        Assert.That(MaxAbsDifference(restored.forward(encoder, decoder), expected), Is.GreaterThan(1e-3), "a different seed differs");
        restored.load(new MemoryStream(saved.ToArray()));

        Assert.That(MaxAbsDifference(restored.forward(encoder, decoder), expected), Is.EqualTo(0));
        Assert.That(restored.state_dict().Keys, Does.Contain("encoder.0.selfAttention.query.weight"));
    }
}
