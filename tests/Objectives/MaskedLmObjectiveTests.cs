using NUnit.Framework;
using TorchSharp;
using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Tests.Models;
using static TorchSharp.torch;

namespace Training.Tests.Objectives;

/// <summary>MLM masking: how many tokens, which ones, and what replaces them.</summary>
public class MaskedLmObjectiveTests
{
    private static readonly SpecialTokens Special = new ByteTokenizer(sentinelCount: 4).Special;

    private static MaskedLmObjective Objective(double rate = 0.3, double evalRate = 0.15) => new(128, rate, evalRate, Special, seed: 17);

    /// <summary>Byte ids of printable text with an EOS every 40 tokens.</summary>
    private static int[] Window(int length, int salt)
    {
        var random = new Random(salt);
        return Enumerable.Range(0, length).Select(i => i % 40 == 39 ? Special.Eos : 3 + random.Next(32, 127)).ToArray();
    }

    [Test]
    public void Mask_ThousandsOfWindows_MasksTheRateAndSplits80_10_10()
    {
        var objective = Objective();
        long eligible = 0, chosen = 0, expectedChosen = 0, maskId = 0, kept = 0, replaced = 0;
        for (var example = 0; example < 2000; example++)
        {
            var window = Window(128, example);
            var masked = objective.Mask(window, ObjectiveMath.ExampleSeed(17, example), 0.3);
            var ordinary = window.Count(t => !Special.IsSpecial(t));
            eligible += ordinary;
            expectedChosen += (long)Math.Round(0.3 * ordinary, MidpointRounding.ToEven);
            chosen += masked.Masked.Length;
            foreach (var position in masked.Masked)
            {
                if (masked.Input[position] == objective.MaskId) maskId++;
                else if (masked.Input[position] == window[position]) kept++;
                else replaced++;
            }
        }

        // A random replacement equals the original 1 time in 253, so "kept" is 10% + a little.
        Assert.Multiple(() =>
        {
            Assert.That(chosen, Is.EqualTo(expectedChosen), "round(rate * ordinary tokens) per window");
            Assert.That((double)chosen / eligible, Is.EqualTo(0.3).Within(0.005));
            Assert.That((double)maskId / chosen, Is.EqualTo(0.8).Within(0.01));
            Assert.That((double)replaced / chosen, Is.EqualTo(0.1 * 252 / 253).Within(0.008));
            Assert.That((double)kept / chosen, Is.EqualTo(0.1 + 0.1 / 253).Within(0.008));
        });
    }

    [Test]
    public void Mask_OneWindow_LabelsExactlyTheChosenPositionsAndNeverASpecialToken()
    {
        var objective = Objective();
        var window = Window(128, 3);

        var masked = objective.Mask(window, 99, 0.3);

        for (var i = 0; i < window.Length; i++)
        {
            var isChosen = masked.Masked.Contains(i);
            Assert.That(masked.Labels[i], Is.EqualTo(isChosen ? window[i] : ObjectiveMath.IgnoreIndex), $"position {i}");
            if (!isChosen) Assert.That(masked.Input[i], Is.EqualTo(window[i]), $"unchosen position {i} is left alone");
        }
        Assert.That(masked.Masked.All(p => !Special.IsSpecial(window[p])), Is.True, "EOS is never masked");
        Assert.That(masked.Masked.Length, Is.EqualTo((int)Math.Round(0.3 * window.Count(t => !Special.IsSpecial(t)), MidpointRounding.ToEven)));
        Assert.That(masked.Input.Where((t, i) => t != window[i] && t != objective.MaskId).All(t => !Special.IsSpecial(t)), Is.True,
            "random replacements are ordinary ids");
    }

    [Test]
    public void Mask_SameSeed_SameMaskAndOtherSeed_OtherMask()
    {
        var objective = Objective();
        var window = Window(128, 5);

        var first = objective.Mask(window, 1234, 0.3);
        var again = objective.Mask(window, 1234, 0.3);
        var other = objective.Mask(window, 1235, 0.3);

        Assert.That(again.Input, Is.EqualTo(first.Input));
        Assert.That(again.Masked, Is.EqualTo(first.Masked));
        Assert.That(other.Masked, Is.Not.EqualTo(first.Masked));
    }

    [Test]
    public void Compute_ModelInEvalMode_UsesTheEvalRate()
    {
        using var scope = NewDisposeScope();
        var objective = new MaskedLmObjective(16, 0.5, 0.25, Special, seed: 1);
        manual_seed(2);
        var model = new EttinEncoder(ZooConfigs.Ettin(ModelArchitecture.EncoderOnly) with { VocabSize = Special.VocabSize });
        var windows = Enumerable.Range(0, 4).Select(i => Window(16, i).Select(t => t == Special.Eos ? 70 : t).ToArray()).ToList();
        var indices = Enumerable.Range(0, 4).Select(i => (long)i).ToList();

        model.train();
        var training = objective.Compute(model, windows, indices, CPU);
        model.eval();
        var evaluation = objective.Compute(model, windows, indices, CPU);

        Assert.That((training.TargetTokens, evaluation.TargetTokens), Is.EqualTo((4L * 8, 4L * 4)));
        Assert.That(training.ProcessedTokens, Is.EqualTo(64));
        Assert.That(training.Loss.item<float>(), Is.GreaterThan(0f));
    }

    [Test]
    public void Compute_CausalModel_ThrowsNamingTheEncoderOnlyArch()
    {
        using var scope = NewDisposeScope();
        var model = new Gpt(ZooConfigs.For(ModelArchitecture.Gpt) with { VocabSize = Special.VocabSize });

        var error = Assert.Throws<ArgumentException>(() =>
            new MaskedLmObjective(16, 0.3, 0.15, Special, 1).Compute(model, [Window(16, 0)], [0], CPU))!;

        Assert.That(error.Message, Does.Contain("model.arch: encoder-only"));
    }

    [Test]
    public void Compute_WindowsOfOnlySpecialTokens_ThrowsInsteadOfANaNLoss()
    {
        using var scope = NewDisposeScope();
        var model = new EttinEncoder(ZooConfigs.Ettin(ModelArchitecture.EncoderOnly) with { VocabSize = Special.VocabSize });
        var onlyEos = Enumerable.Repeat(Special.Eos, 16).ToArray();

        var error = Assert.Throws<InvalidDataException>(() => Objective().Compute(model, [onlyEos, onlyEos], [0, 1], CPU))!;

        Assert.That(error.Message, Does.Contain("no ordinary token to mask"));
    }

    [Test]
    public void Constructor_NoSentinelForTheMaskId_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => new MaskedLmObjective(16, 0.3, 0.15, new ByteTokenizer(0).Special, 1))!;

        Assert.That(error.Message, Does.Contain("tokenizer.sentinels >= 1"));
    }

    [Test]
    public void TokensPerExample_EachObjective_CountsWhatTheModelReads()
    {
        Assert.That(ObjectiveFactory.TokensPerExample(new(ObjectiveKind.SpanCorruption, 512, 0.15, 3)), Is.EqualTo((512, 114)));
        Assert.That(ObjectiveFactory.TokensPerExample(new(ObjectiveKind.Clm, 256, 0.15, 3)), Is.EqualTo((0, 256)));
        Assert.That(ObjectiveFactory.TokensPerExample(new(ObjectiveKind.Mlm, 128, 0.15, 3)), Is.EqualTo((128, 0)));
    }
}
