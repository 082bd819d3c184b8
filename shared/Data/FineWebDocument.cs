namespace Training.Shared.Data;

/// <summary>One row of a FineWeb-Edu shard. Only <see cref="Text"/> is required when reading.</summary>
public sealed record FineWebDocument(
    string Text,
    string Id,
    string Dump,
    string Url,
    string FilePath,
    string Language,
    double LanguageScore,
    long TokenCount,
    double Score,
    long IntScore)
{
    /// <summary>A document that carries only text; every other column takes its default.</summary>
    public static FineWebDocument FromText(string text) =>
        new(text, Id: "", Dump: "", Url: "", FilePath: "", Language: "", LanguageScore: 0, TokenCount: 0, Score: 0, IntScore: 0);
}
