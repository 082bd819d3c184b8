namespace Training.Shared.Data;

public enum TokenizerKind { Byte, Cl100k, Char, SentencePiece }

/// <summary>The <c>tokenizer:</c> section of an experiment: which tokenizer, and how many sentinel ids it reserves.</summary>
/// <param name="Path">sentencepiece: the absolute path of the <c>.model</c> file (written relative to the experiment file).</param>
/// <param name="PadVocabTo">sentencepiece: the vocabulary is rounded up to a multiple of this (1 = no padding).</param>
public sealed record TokenizerSpec(TokenizerKind Kind, int Sentinels, string? Path = null, int PadVocabTo = 1);
