namespace Training.Shared.Data;

/// <summary>A shard that is not readable as FineWeb-Edu parquet. The message names the file (and row group/row where known).</summary>
public sealed class ShardFormatException : Exception
{
    public ShardFormatException(string filePath, string problem, int? rowGroup = null, long? row = null, Exception? inner = null)
        : base(Describe(filePath, problem, rowGroup, row), inner)
    {
        FilePath = filePath;
        RowGroup = rowGroup;
        Row = row;
    }

    /// <summary>What a user can do about any unreadable shard; every message ends with it.</summary>
    public const string Advice =
        "Re-create the file (`orchestrator data import`, or copy it again from its source) or leave it out of data.train / data.eval";

    public string FilePath { get; }
    public int? RowGroup { get; }

    /// <summary>Row index inside the row group, where the problem is tied to one row.</summary>
    public long? Row { get; }

    private static string Describe(string filePath, string problem, int? rowGroup, long? row)
    {
        var where = filePath;
        if (rowGroup is { } group) where += $", row group {group}";
        if (row is { } r) where += $", row {r}";
        return $"Shard '{where}': {problem}. {Advice}";
    }
}
