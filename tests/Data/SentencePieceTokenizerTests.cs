using NUnit.Framework;
using Training.Shared.Data;
using Training.Tests.Support;

namespace Training.Tests.Data;

/// <summary>SentencePiece model files (written by the test in spm_train's format) as experiment tokenizers.</summary>
public sealed class SentencePieceTokenizerTests
{
    [Test]
    public void T5Layout_KeepsItsSpecials_PutsSentinelsOnTop_AndPadsTheVocabulary()
    {
        using var dir = new TempDirectory();
        SentencePieceModels.WriteT5Style(dir.Combine("spiece.model"), count: 32_000);

        var tokenizer = new SentencePieceFileTokenizer(dir.Combine("spiece.model"), sentinelCount: 100, padVocabTo: 128);

        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.PieceCount, Is.EqualTo(32_000));
            Assert.That(tokenizer.VocabSize, Is.EqualTo(32_128), "32,000 pieces + 100 sentinels, padded to a multiple of 128");
            Assert.That((tokenizer.Special.Pad, tokenizer.Special.Eos, tokenizer.Special.Bos), Is.EqualTo((0, 1, 0)), "T5: <pad> 0, </s> 1, decoding starts from pad");
            Assert.That((tokenizer.Special.Sentinel(0), tokenizer.Special.FirstSentinelId), Is.EqualTo((32_127, 32_028)));
        });
    }

    [Test]
    public void UnigramModel_EncodesByPieceScores_AndDecodesBack()
    {
        using var dir = new TempDirectory();
        SentencePieceModels.WriteT5Style(dir.Combine("spiece.model"));
        var tokenizer = new SentencePieceFileTokenizer(dir.Combine("spiece.model"), sentinelCount: 4);

        var ids = tokenizer.Encode("hello world");

        Assert.That(ids.Select(id => tokenizer.Decode([id])), Is.EqualTo(new[] { "hello", "world" }), "the two whole-word pieces beat their letters");
        Assert.That(tokenizer.Decode(ids), Is.EqualTo("hello world"));
        // Specials and sentinels are not text.
        Assert.That(tokenizer.Decode([tokenizer.Special.Pad, .. ids, tokenizer.Special.Eos, tokenizer.Special.Sentinel(0)]), Is.EqualTo("hello world"));
    }

    [Test]
    public void LlamaLayout_WithoutPad_GetsANewPadIdAfterThePieces()
    {
        using var dir = new TempDirectory();
        SentencePieceModels.WriteLlamaStyle(dir.Combine("tokenizer.model"));

        var tokenizer = new SentencePieceFileTokenizer(dir.Combine("tokenizer.model"), sentinelCount: 2);

        Assert.Multiple(() =>
        {
            Assert.That((tokenizer.Special.Bos, tokenizer.Special.Eos), Is.EqualTo((1, 2)));
            Assert.That(tokenizer.Special.Pad, Is.EqualTo(tokenizer.PieceCount), "Llama has no pad piece: the first id after the pieces");
            Assert.That(tokenizer.VocabSize, Is.EqualTo(tokenizer.PieceCount + 1 + 2));
            Assert.That(tokenizer.Decode(tokenizer.Encode("hello world")), Is.EqualTo("hello world"));
            Assert.That(tokenizer.Encode("hello world"), Has.None.GreaterThanOrEqualTo(tokenizer.PieceCount));
        });
    }

    [Test]
    public void TokenizerId_IsTheSameForCopiesOfAFile_AndDiffersForAnotherModel()
    {
        using var dir = new TempDirectory();
        SentencePieceModels.WriteT5Style(dir.Combine("a.model"));
        File.Copy(dir.Combine("a.model"), dir.Combine("copy.model"));
        SentencePieceModels.WriteT5Style(dir.Combine("b.model"), count: 65);

        string Id(string file) => TokenizerIds.Of(new SentencePieceFileTokenizer(dir.Combine(file), 4));

        Assert.That(Id("copy.model"), Is.EqualTo(Id("a.model")));
        Assert.That(Id("b.model"), Is.Not.EqualTo(Id("a.model")));
    }

    [Test]
    public async Task Submit_SpanCorruptionWithASentencePieceModel_TrainsOnTheLocalCluster()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        SentencePieceModels.WriteT5Style(dir.Combine("spiece.model"));
        File.WriteAllText(dir.Combine("sp.yaml"), TestCorpus.TinyExperiment(dir.Path, name: "sp", steps: 4)
            .Replace("kind: byte", "kind: sentencepiece\n  path: spiece.model\n  pad_vocab_to: 32"));

        var inspect = await CliProcess.RunAsync(dir.Path, "inspect", dir.Combine("sp.yaml"));
        var submit = await CliProcess.RunAsync(dir.Path, "submit", dir.Combine("sp.yaml"));

        Assert.That(inspect.ExitCode, Is.EqualTo(0), inspect.Output);
        Assert.That(inspect.Stdout, Does.Contain("│ 96 "), "64 pieces + 20 sentinels, padded to a multiple of 32");
        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output);
        var run = Directory.GetDirectories(dir.Combine("runs")).Single();
        Assert.That(RunState.Steps(run, "sp-t000"), Is.EqualTo(4));
        Assert.That(RunState.Status(run, "sp-t000").GetProperty("loss").GetDouble(), Is.GreaterThan(0).And.LessThan(Math.Log(96) + 1));
    }

    [Test]
    public void NotAModelFile_IsRefusedNamingThePath()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("bad.model"), "this is not a protobuf");

        var error = Assert.Throws<InvalidDataException>(() => new SentencePieceFileTokenizer(dir.Combine("bad.model"), 0))!;
        Assert.That(error.Message, Does.StartWith($"tokenizer.path {dir.Combine("bad.model")}: not a SentencePiece model"));
        Assert.Throws<FileNotFoundException>(() => new SentencePieceFileTokenizer(dir.Combine("missing.model"), 0));
    }
}
