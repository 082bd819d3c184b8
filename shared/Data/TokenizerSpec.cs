namespace Training.Shared.Data;

public enum TokenizerKind { Byte, Cl100k, Char }

/// <summary>The <c>tokenizer:</c> section of an experiment: which tokenizer, and how many sentinel ids it reserves.</summary>
public sealed record TokenizerSpec(TokenizerKind Kind, int Sentinels);
