using NUnit.Framework;
using Training.Shared.Data;
using Training.Tests.Support;

namespace Training.Tests.Data;

/// <summary>Byte-level BPE tokenizers from vocab.json and merges.txt (written by the test in GPT-2's format).</summary>
public sealed class BpeTokenizerTests
{
    [Test]
    public void Encode_FollowsTheMerges_AndDecodesBack()
    {
        using var dir = new TempDirectory();
        BpeFiles.Write(dir.Combine("gpt2"));
        var tokenizer = new ByteLevelBpeFileTokenizer(dir.Combine("gpt2"), sentinelCount: 3);

        var ids = tokenizer.Encode("hello world");

        Assert.That(ids, Is.EqualTo(new[] { 256 + 3, 256 + 8 }), "'hello' and 'Ġworld', the last merges of each word");
        Assert.That(tokenizer.Decode(ids), Is.EqualTo("hello world"));
        Assert.That(tokenizer.Decode(tokenizer.Encode("held, old!")), Is.EqualTo("held, old!"), "every byte has a symbol");
    }

    [Test]
    public void Specials_EndOfTextIsEos_PadAndBosAreANewId_SentinelsOnTop()
    {
        using var dir = new TempDirectory();
        BpeFiles.Write(dir.Combine("gpt2"));

        var tokenizer = new ByteLevelBpeFileTokenizer(dir.Combine("gpt2"), sentinelCount: 3, padVocabTo: 16);

        var endOfText = 256 + BpeFiles.Merges.Length;
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.PieceCount, Is.EqualTo(endOfText + 1));
            Assert.That(tokenizer.Special.Eos, Is.EqualTo(endOfText));
            Assert.That((tokenizer.Special.Pad, tokenizer.Special.Bos), Is.EqualTo((endOfText + 1, endOfText + 1)), "no pad or bos token: one new id for both");
            Assert.That(tokenizer.VocabSize, Is.EqualTo(272), "266 tokens + pad + 3 sentinels = 270, padded to 272");
            Assert.That(tokenizer.Special.Sentinel(0), Is.EqualTo(271));
            Assert.That(tokenizer.Encode("<|endoftext|>"), Has.No.Member(endOfText), "a document cannot inject the special token");
            Assert.That(tokenizer.Decode([tokenizer.Special.Eos, .. tokenizer.Encode("hello"), tokenizer.Special.Sentinel(0)]), Is.EqualTo("hello"));
        });
    }

    [Test]
    public void FolderWithoutMerges_IsRefusedNamingTheFile()
    {
        using var dir = new TempDirectory();
        BpeFiles.Write(dir.Combine("gpt2"));
        File.Delete(dir.Combine("gpt2", "merges.txt"));

        var error = Assert.Throws<FileNotFoundException>(() => new ByteLevelBpeFileTokenizer(dir.Combine("gpt2"), 0))!;

        Assert.That(error.Message, Does.Contain("no merges.txt"));
    }

    [Test]
    public void Parse_BpeTokenizer_ResolvesItsFolderAgainstTheFile()
    {
        using var dir = new TempDirectory();
        BpeFiles.Write(dir.Combine("tok"));
        File.WriteAllText(dir.Combine("x.yaml"), "name: x\ndata:\n  train: data\nmodel:\n  arch: decoder-only\nobjective:\n  kind: clm\ntokenizer:\n  kind: bpe\n  path: tok\n  sentinels: 0\n");

        var spec = global::Training.Shared.Spec.ExperimentLoader.Parse(File.ReadAllText(dir.Combine("x.yaml")), dir.Combine("x.yaml"));

        Assert.That(spec.Tokenizer, Is.EqualTo(new TokenizerSpec(TokenizerKind.Bpe, 0, dir.Combine("tok"))));
        Assert.That(TokenizerFactory.ForSpec(spec.Tokenizer, () => []).Decode(TokenizerFactory.ForSpec(spec.Tokenizer, () => []).Encode("hello")), Is.EqualTo("hello"));
    }
}
