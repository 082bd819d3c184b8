namespace Training.Bench.Plotting;

/// <summary>CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320) as PNG chunks need it; System.IO.Hashing is not referenced.</summary>
public static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    /// <summary>CRC of the bytes; pass a previous result as <paramref name="crc"/> to continue over more bytes.</summary>
    public static uint Compute(ReadOnlySpan<byte> bytes, uint crc = 0)
    {
        var c = ~crc;
        foreach (var b in bytes)
            c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
