using NUnit.Framework;
using Training.Shared.Models;

namespace Training.Tests.Models;

public class TransformerConfigTests
{
    [Test]
    public void Reference330M_MatchesReleasedModel()
    {
        var c = TransformerConfig.Reference330M;
        Assert.Multiple(() =>
        {
            Assert.That((c.VocabSize, c.DModel, c.EncoderLayers, c.DecoderLayers), Is.EqualTo((32128, 1024, 20, 10)));
            Assert.That((c.Heads, c.KvHeads, c.HeadDim, c.FfnDim), Is.EqualTo((6, 3, 64, 4096)));
            Assert.That((c.AttentionDim, c.KeyValueDim), Is.EqualTo((384, 192)));
            Assert.That(c.Mlp, Is.EqualTo(MlpKind.GeluTanh));
            Assert.That((c.Dropout, c.RopeTheta, c.NormEps, c.PadId, c.TieEmbeddings), Is.EqualTo((0.1, 10000.0, 1e-6, 0, true)));
        });
        Assert.DoesNotThrow(c.Validate);
    }

    [TestCase(nameof(TransformerConfig.KvHeads))]
    [TestCase(nameof(TransformerConfig.HeadDim))]
    [TestCase(nameof(TransformerConfig.PadId))]
    [TestCase(nameof(TransformerConfig.Dropout))]
    [TestCase(nameof(TransformerConfig.DecoderLayers))]
    public void Validate_BadField_ThrowsNamingField(string field)
    {
        var good = TinyConfigs.EncoderDecoder();
        var bad = field switch
        {
            nameof(TransformerConfig.KvHeads) => good with { Heads = 4, KvHeads = 3 },
            nameof(TransformerConfig.HeadDim) => good with { HeadDim = 7 },
            nameof(TransformerConfig.PadId) => good with { PadId = good.VocabSize },
            nameof(TransformerConfig.Dropout) => good with { Dropout = 1.0 },
            _ => good with { DecoderLayers = 0 },
        };
        var error = Assert.Throws<ArgumentException>(bad.Validate)!;
        Assert.That(error.ParamName, Is.EqualTo(field));
        Assert.That(error.Message, Does.Contain($"TransformerConfig.{field}"));
    }
}
