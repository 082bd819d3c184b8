using System.Text;

namespace Training.Shared.Data;

/// <summary>
/// UTF-8 bytes as tokens. Ids: pad 0, bos 1, eos 2, byte b is <c>3 + b</c> (3..258), then sentinels up to the top.
/// </summary>
public sealed class ByteTokenizer : ITokenizer
{
    public const string KindName = "byte";
    private const int FirstByteId = 3;
    private const int ByteCount = 256;

    public ByteTokenizer(int sentinelCount)
    {
        if (sentinelCount < 0)
            throw new ArgumentOutOfRangeException(nameof(sentinelCount), sentinelCount, "Sentinel count cannot be negative.");
        var vocabSize = FirstByteId + ByteCount + sentinelCount;
        Special = new SpecialTokens(Pad: 0, Bos: 1, Eos: 2, SentinelCount: sentinelCount, VocabSize: vocabSize);
    }

    public string Name => KindName;
    public int VocabSize => Special.VocabSize;
    public SpecialTokens Special { get; }

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) ids[i] = FirstByteId + bytes[i];
        return ids;
    }

    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id is outside the '{Name}' vocabulary of {VocabSize}.");
            if (id >= FirstByteId && id < FirstByteId + ByteCount) bytes.Add((byte)(id - FirstByteId));
        }

        // Invalid UTF-8 (e.g. a window cut mid-character) decodes to U+FFFD rather than throwing.
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
