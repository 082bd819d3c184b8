namespace Training.Shared.Data;

/// <summary>How source files are turned into document text.</summary>
public enum TextFormat
{
    /// <summary>The file's text as is (UTF-8).</summary>
    Plain,

    /// <summary>Brown corpus form C (<c>word/tag</c> tokens): tags stripped, tokens joined into readable text.</summary>
    Brown,
}

/// <summary>
/// What <see cref="DocumentImporter.Import"/> reads and writes. <paramref name="From"/> is a file or a folder (every regular
/// file in it, recursively, is one document); shards go to <c>OutDirectory/train</c> and, when
/// <paramref name="EvalFraction"/> &gt; 0, <c>OutDirectory/eval</c>. <paramref name="RowsPerRowGroup"/> sets the
/// shuffling granularity of <see cref="PackedExampleStream"/> (units are row groups).
/// </summary>
public sealed record ImportOptions(
    string From,
    string OutDirectory,
    int RowsPerShard = 1000,
    double EvalFraction = 0,
    TextFormat Format = TextFormat.Plain,
    long Seed = 0,
    int RowsPerRowGroup = 100);

/// <summary>
/// Outcome of an import. <paramref name="Files"/> are the written shard paths (train first, then eval);
/// <paramref name="Characters"/> counts the characters of all document texts.
/// </summary>
public sealed record ImportResult(int Documents, int TrainShards, int EvalShards, IReadOnlyList<string> Files, long Characters)
{
    /// <summary>Source files that were not imported, each with the reason (binary, empty, not Brown-tagged).</summary>
    public IReadOnlyList<string> Skipped { get; init; } = [];
}
