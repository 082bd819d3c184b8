using Parquet;

namespace Training.Tests.Support;

/// <summary>The ways a real shard written by ShardWriter gets damaged on disk: cut short, overwritten, replaced.</summary>
public enum Damage
{
    /// <summary>The second half of the file is gone (an interrupted copy): no footer.</summary>
    Truncated,

    /// <summary>The first page header of the text column in one row group is overwritten; the footer is intact.</summary>
    RowGroupOverwritten,

    /// <summary>The file holds plain text, not parquet.</summary>
    NotParquet,
}

public static class ShardDamage
{
    public static void Apply(string path, Damage damage, int rowGroup = 0)
    {
        switch (damage)
        {
            case Damage.Truncated:
                var bytes = File.ReadAllBytes(path);
                File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
                break;
            case Damage.RowGroupOverwritten:
                OverwriteRowGroup(path, rowGroup);
                break;
            case Damage.NotParquet:
                File.WriteAllText(path, "text,id\nthis was exported as CSV and renamed,1\n");
                break;
        }
    }

    /// <summary>Overwrites, in place and keeping the length, the start of the <c>text</c> column chunk of a row group.</summary>
    public static void OverwriteRowGroup(string path, int rowGroup)
    {
        var offset = Task.Run(async () =>
        {
            await using var reader = await ParquetReader.CreateAsync(path);
            var column = reader.Metadata!.RowGroups[rowGroup].Columns[0].MetaData!;
            return column.DictionaryPageOffset is > 0 and var dictionary ? Math.Min(dictionary, column.DataPageOffset) : column.DataPageOffset;
        }).GetAwaiter().GetResult();
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        stream.Position = offset;
        stream.Write(Enumerable.Repeat((byte)0xFF, 32).ToArray());
    }

    public static int RowGroupCount(string path) => Task.Run(async () =>
    {
        await using var reader = await ParquetReader.CreateAsync(path);
        return reader.RowGroupCount;
    }).GetAwaiter().GetResult();
}
