using NUnit.Framework;
using TorchSharp;
using Training.Shared.Models;
using static TorchSharp.torch;
using static Training.Tests.Models.ModelTensors;
using Generator = Training.Shared.Models.Generator;

namespace Training.Tests.Models;

/// <summary>Repeated steps inside dispose scopes must leave the number of live tensors unchanged.</summary>
public class MemoryTests
{
    private static long LiveTensors => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    [Test]
    public void TrainingStep_RepeatedInDisposeScopes_LiveTensorCountFlat()
    {
        using var scope = NewDisposeScope();
        manual_seed(31);
        var model = new EncoderDecoderModel(TinyConfigs.EncoderDecoder() with { Dropout = 0.1 });
        using var optimizer = optim.AdamW(model.parameters(), lr: 1e-3);
        var encoder = Tokens([5, 6, 7, 0], [8, 9, 10, 11]);
        var decoder = Tokens([TinyConfigs.Bos, 12, 13], [TinyConfigs.Bos, 14, 0]);

        void Step()
        {
            using var stepScope = NewDisposeScope();
            var logits = model.forward(encoder, decoder);
            var loss = nn.functional.cross_entropy(logits.reshape(-1, 37), decoder.reshape(-1), ignore_index: TinyConfigs.Pad);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }

        Step(); // first step creates gradients and optimizer state, which live as long as the model
        var before = LiveTensors;
        for (var i = 0; i < 5; i++)
            Step();
        Assert.That(LiveTensors, Is.EqualTo(before));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Generate_Repeated_LiveTensorCountFlat(bool useCache)
    {
        using var scope = NewDisposeScope();
        manual_seed(32);
        var encoderDecoder = new EncoderDecoderModel(TinyConfigs.EncoderDecoder());
        var decoderOnly = new DecoderOnlyModel(TinyConfigs.DecoderOnly());
        var encoder = Tokens([5, 6, 7, 0], [8, 9, 10, 11]);
        var prompts = Tokens([0, 5, 6], [7, 8, 9]);
        var options = new GenerationOptions(MaxNewTokens: 6, Temperature: 1.0, TopK: 5, Seed: 3, UseCache: useCache);

        var before = LiveTensors;
        for (var i = 0; i < 3; i++)
        {
            Generator.Generate(encoderDecoder, encoder, TinyConfigs.Bos, TinyConfigs.Eos, options);
            Generator.Generate(decoderOnly, prompts, TinyConfigs.Eos, options);
        }
        Assert.That(LiveTensors, Is.EqualTo(before));
    }

    [Test]
    public void DecodingState_Dispose_ReleasesCacheTensors()
    {
        using var scope = NewDisposeScope();
        manual_seed(33);
        var model = new EncoderDecoderModel(TinyConfigs.EncoderDecoder());
        var encoder = Tokens([5, 6, 7, 0]);
        using var noGrad = no_grad();

        var before = LiveTensors;
        using (NewDisposeScope())
        {
            var state = model.StartDecoding(encoder, capacity: 8);
            using (NewDisposeScope())
                model.DecodeNext(Tokens([TinyConfigs.Bos]), state);
            Assert.That(LiveTensors, Is.GreaterThan(before), "the state holds caches while decoding");
            state.Dispose();
        }
        Assert.That(LiveTensors, Is.EqualTo(before));
    }
}
