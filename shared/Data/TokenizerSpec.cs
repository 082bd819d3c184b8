namespace Training.Shared.Data;

public enum TokenizerKind { Byte, Cl100k, Char, SentencePiece, Bpe }

/// <summary>The <c>tokenizer:</c> section of an experiment: which tokenizer, and how many sentinel ids it reserves.</summary>
/// <param name="Path">sentencepiece: the absolute path of the <c>.model</c> file; bpe: of the folder with vocab.json and
/// merges.txt (written relative to the experiment file).</param>
/// <param name="PadVocabTo">sentencepiece, bpe: the vocabulary is rounded up to a multiple of this (1 = no padding).</param>
public sealed record TokenizerSpec(TokenizerKind Kind, int Sentinels, string? Path = null, int PadVocabTo = 1);

public static class TokenizerKinds
{
    /// <summary>The kinds read from files (tokenizer.path), whose vocabulary may be padded (tokenizer.pad_vocab_to).</summary>
    public static bool IsFromFiles(this TokenizerKind kind) => kind is TokenizerKind.SentencePiece or TokenizerKind.Bpe;
}
