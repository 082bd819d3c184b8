using Microsoft.ML.Tokenizers;
using NUnit.Framework;
using Training.Shared.Data;

namespace Training.Tests.Data;

public class TokenizerTests
{
    private static readonly string[] RoundTripTexts =
    [
        "The jury said Friday an investigation produced no evidence.",
        "Ünïcödé: naïve café, Straße, 中文字符, Ελληνικά, русский",
        "Emoji 🙂👍🏽 and a family 👨‍👩‍👧 and a flag 🇺🇸",
        "",
        "tabs\tand\r\nnewlines\n\n  and   runs of spaces  ",
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from kind in new[] { "byte", "cl100k" }
        from text in RoundTripTexts
        select new TestCaseData(kind, text);

    [TestCaseSource(nameof(Cases))]
    public void EncodeDecode_Text_RoundTripsWithoutSpecials(string kind, string text)
    {
        var tokenizer = Tokenizers.Create(kind, sentinels: 100);

        var ids = tokenizer.Encode(text);

        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
            Assert.That(ids.Where(tokenizer.Special.IsSpecial), Is.Empty);
            Assert.That(ids, Has.All.InRange(0, tokenizer.VocabSize - 1));
        });
    }

    [TestCase("byte")]
    [TestCase("cl100k")]
    public void Special_PadBosEosAndSentinels_AreDistinctAndReserved(string kind)
    {
        var tokenizer = Tokenizers.Create(kind, sentinels: 5);
        var special = tokenizer.Special;
        var sentinels = Enumerable.Range(0, 5).Select(special.Sentinel).ToList();
        var all = new[] { special.Pad, special.Bos, special.Eos }.Concat(sentinels).ToList();
        var everyByteAndWord = tokenizer.Encode(string.Concat(Enumerable.Range(1, 0x2FF).Select(c => (char)c)) + " the jury 🙂");

        Assert.Multiple(() =>
        {
            Assert.That(all, Is.Unique);
            Assert.That(all, Has.All.Matches<int>(special.IsSpecial));
            Assert.That(everyByteAndWord.Intersect(all), Is.Empty);
            Assert.That(special.VocabSize, Is.EqualTo(tokenizer.VocabSize));
        });
    }

    [TestCase("byte")]
    [TestCase("cl100k")]
    public void Sentinel_CountsDownFromTheTopOfTheVocabulary(string kind)
    {
        var tokenizer = Tokenizers.Create(kind, sentinels: 3);

        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.Special.Sentinel(0), Is.EqualTo(tokenizer.VocabSize - 1));
            Assert.That(tokenizer.Special.Sentinel(2), Is.EqualTo(tokenizer.VocabSize - 3));
            Assert.That(tokenizer.Special.IsSpecial(tokenizer.VocabSize - 4), Is.False, "the id just below the sentinels is an ordinary or unused id");
            Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Special.Sentinel(3));
        });
    }

    [TestCase("byte")]
    [TestCase("cl100k")]
    public void Decode_SpecialsAroundText_AreSkipped(string kind)
    {
        var tokenizer = Tokenizers.Create(kind, sentinels: 2);
        var special = tokenizer.Special;
        int[] ids = [special.Bos, .. tokenizer.Encode("Hello, "), special.Sentinel(0), .. tokenizer.Encode("world"), special.Eos, special.Pad];

        Assert.That(tokenizer.Decode(ids), Is.EqualTo("Hello, world"));
    }

    [Test]
    public void ByteTokenizer_Layout_MatchesTheDocumentedIds()
    {
        var tokenizer = new ByteTokenizer(sentinelCount: 10);

        Assert.Multiple(() =>
        {
            Assert.That((tokenizer.Special.Pad, tokenizer.Special.Bos, tokenizer.Special.Eos), Is.EqualTo((0, 1, 2)));
            Assert.That(tokenizer.VocabSize, Is.EqualTo(269));
            Assert.That(tokenizer.Encode("A\u00ff"), Is.EqualTo(new[] { 3 + 0x41, 3 + 0xC3, 3 + 0xBF }));
            Assert.That(tokenizer.Special.Sentinel(9), Is.EqualTo(259));
            Assert.That(tokenizer.Name, Is.EqualTo("byte"));
        });
    }

    [TestCase(0, 100_352)]
    [TestCase(100, 100_480)]
    [TestCase(93, 100_352)]
    public void Cl100k_VocabSize_PaddedToMultipleOf128AboveOrdinaryTokens(int sentinels, int expectedVocab)
    {
        var tokenizer = new Cl100kTokenizer(sentinels);

        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.VocabSize, Is.EqualTo(expectedVocab));
            Assert.That(tokenizer.VocabSize % 128, Is.Zero);
            Assert.That(new[] { tokenizer.Special.Pad, tokenizer.Special.Bos, tokenizer.Special.Eos },
                Has.All.GreaterThanOrEqualTo(Cl100kTokenizer.OrdinaryTokenCount));
            Assert.That(tokenizer.Special.FirstSentinelId, Is.GreaterThan(tokenizer.Special.Eos));
            Assert.That(tokenizer.Name, Is.EqualTo("cl100k"));
        });
    }

    [Test]
    public void Cl100k_Encode_MatchesGpt4TiktokenIdsOnPlainText()
    {
        const string text = "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election " +
                            "produced \"no evidence\" that any irregularities took place.\n\n  It's 1234567 — naïve 🙂!";
        var reference = TiktokenTokenizer.CreateForModel("gpt-4");

        var ids = new Cl100kTokenizer(0).Encode(text);

        Assert.That(ids, Is.EqualTo(reference.EncodeToIds(text)));
    }

    [Test]
    public void Cl100k_TextContainingTiktokenSpecialStrings_EncodesAsOrdinaryTokens()
    {
        const string text = "before <|endoftext|> after <|fim_prefix|>";
        var tokenizer = new Cl100kTokenizer(10);

        var ids = tokenizer.Encode(text);

        Assert.Multiple(() =>
        {
            Assert.That(ids, Has.All.LessThan(Cl100kTokenizer.OrdinaryTokenCount));
            Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
        });
    }

    [Test]
    public void Decode_IdOutsideVocabulary_Throws()
    {
        var tokenizer = new ByteTokenizer(0);

        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([tokenizer.VocabSize]));
    }

    [Test]
    public void Create_UnknownKind_ListsAllowedKinds()
    {
        var error = Assert.Throws<ArgumentException>(() => Tokenizers.Create("wordpiece", 0));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("wordpiece"));
            Assert.That(error.Message, Does.Contain("\"byte\""));
            Assert.That(error.Message, Does.Contain("\"cl100k\""));
        });
    }
}
