using NUnit.Framework;
using Training.Shared.Data;
using Training.Shared.Objectives;

namespace Training.Tests.Objectives;

public class SpanCorruptionTests
{
    private static readonly SpecialTokens Special = Tokenizers.Create("byte", 100).Special;

    [Test]
    public void ComputeLengths_Input512AtT5Defaults_GivesRaw568AndTarget114()
    {
        var lengths = SpanCorruption.ComputeLengths(512, 0.15, 3);
        Assert.That(lengths, Is.EqualTo(new SpanCorruptionLengths(RawLength: 568, InputLength: 512, TargetLength: 114, NoiseTokens: 85, Spans: 28)));
    }

    [TestCase(128, 0.15, 3.0)]
    [TestCase(512, 0.15, 3.0)]
    [TestCase(100, 0.3, 2.0)]
    [TestCase(64, 0.5, 2.0)]
    [TestCase(64, 0.4, 1.0)]
    public void ComputeLengths_RawLength_IsLargestThatFits(int input, double density, double meanSpan)
    {
        var lengths = SpanCorruption.ComputeLengths(input, density, meanSpan);
        var next = SpanCorruption.ComputeLengths(input + 50, density, meanSpan);
        Assert.Multiple(() =>
        {
            Assert.That(lengths.InputLength, Is.LessThanOrEqualTo(input));
            Assert.That(lengths.InputLength, Is.EqualTo(lengths.RawLength - lengths.NoiseTokens + lengths.Spans + 1));
            Assert.That(lengths.TargetLength, Is.EqualTo(lengths.NoiseTokens + lengths.Spans + 1));
            Assert.That(next.RawLength, Is.GreaterThan(lengths.RawLength));
        });
        // One more raw token would overflow the input.
        var corruption = new SpanCorruption(density, meanSpan, input, Tokenizers.Create("byte", 1000).Special);
        Assert.That(corruption.Lengths.RawLength, Is.EqualTo(lengths.RawLength));
    }

    [Test]
    public void Corrupt_ManySeeds_InputAndTargetHaveExactLengths()
    {
        var corruption = new SpanCorruption(0.15, 3, 512, Special);
        var tokens = Enumerable.Range(0, 568).Select(i => 3 + i % 256).ToArray();
        for (ulong seed = 0; seed < 200; seed++)
        {
            var example = corruption.Corrupt(tokens, seed);
            Assert.That(example.Input, Has.Length.EqualTo(512), $"seed {seed}");
            Assert.That(example.Target, Has.Length.EqualTo(114), $"seed {seed}");
        }
    }

    [Test]
    public void Corrupt_InputAndTarget_ReassembleTheOriginal()
    {
        var corruption = new SpanCorruption(0.15, 3, 128, Special);
        var rng = new Random(5);
        var tokens = Enumerable.Range(0, corruption.Lengths.RawLength).Select(_ => rng.Next(3, 259)).ToArray();
        var example = corruption.Corrupt(tokens, 42);

        // Replace each sentinel in the input by the tokens that follow the same sentinel in the target.
        var spans = new Dictionary<int, List<int>>();
        List<int>? current = null;
        foreach (var t in example.Target[..^1])
        {
            if (Special.IsSpecial(t)) spans[t] = current = new List<int>();
            else current!.Add(t);
        }
        var rebuilt = new List<int>();
        foreach (var t in example.Input[..^1])
        {
            if (Special.IsSpecial(t)) rebuilt.AddRange(spans[t]);
            else rebuilt.Add(t);
        }
        Assert.Multiple(() =>
        {
            Assert.That(rebuilt, Is.EqualTo(tokens));
            Assert.That(example.Input[^1], Is.EqualTo(Special.Eos));
            Assert.That(example.Target[^1], Is.EqualTo(Special.Eos));
        });
    }

    [Test]
    public void Corrupt_Sentinels_CountDownFromTopOfVocabularyInOrder()
    {
        var corruption = new SpanCorruption(0.15, 3, 512, Special);
        var example = corruption.Corrupt(Enumerable.Repeat(10, 568).ToArray(), 7);
        var sentinels = example.Input.Where(t => t != 10 && t != Special.Eos).ToList();
        var expected = Enumerable.Range(0, 28).Select(i => Special.VocabSize - 1 - i).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(sentinels, Is.EqualTo(expected));
            Assert.That(example.Target.Where(t => t != 10 && t != Special.Eos), Is.EqualTo(expected));
            Assert.That(example.Target[0], Is.EqualTo(Special.VocabSize - 1), "the target starts with the first sentinel");
        });
    }

    [Test]
    public void NoiseMask_Always_HasExactNoiseCountSpanCountAndStartsKept()
    {
        var corruption = new SpanCorruption(0.15, 3, 512, Special);
        var spanLengths = new List<int>();
        for (ulong seed = 0; seed < 300; seed++)
        {
            var mask = corruption.NoiseMask(568, seed);
            Assert.That(mask.Count(m => m), Is.EqualTo(85));
            Assert.That(mask[0], Is.False, "sequences start with kept tokens");
            var starts = Enumerable.Range(0, mask.Length).Count(i => mask[i] && (i == 0 || !mask[i - 1]));
            Assert.That(starts, Is.EqualTo(28));
            var run = 0;
            foreach (var m in mask.Append(false))
            {
                if (m) run++;
                else if (run > 0) { spanLengths.Add(run); run = 0; }
            }
        }
        Assert.That(spanLengths.Average(), Is.EqualTo(85.0 / 28).Within(1e-9));
        Assert.That(spanLengths.Distinct().Count(), Is.GreaterThan(3), "span lengths are random, not fixed");
    }

    [Test]
    public void NoiseMask_SameSeed_SameMask_OtherSeed_OtherMask()
    {
        var corruption = new SpanCorruption(0.15, 3, 512, Special);
        Assert.That(corruption.NoiseMask(568, 11), Is.EqualTo(corruption.NoiseMask(568, 11)));
        Assert.That(corruption.NoiseMask(568, 11), Is.Not.EqualTo(corruption.NoiseMask(568, 12)));
    }

    [Test]
    public void Constructor_TooFewSentinels_ThrowsNamingTheFix()
    {
        var special = Tokenizers.Create("byte", 4).Special;
        var e = Assert.Throws<ArgumentException>(() => new SpanCorruption(0.15, 3, 512, special));
        Assert.That(e!.Message, Does.Contain("28 sentinels").And.Contain("tokenizer.sentinels"));
    }
}
