using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Training.Tests.Bench;

/// <summary>
/// An independent PNG reader for the tests: walks the chunks, checks every CRC with a bit-by-bit CRC-32 (not the
/// table the encoder uses), inflates the IDAT data and undoes all five row filters. 8-bit RGB only.
/// </summary>
internal sealed record PngFile(int Width, int Height, byte BitDepth, byte ColorType, IReadOnlyList<string> ChunkTypes, byte[] Rgb)
{
    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public (byte R, byte G, byte B) Pixel(int x, int y)
    {
        var i = (y * Width + x) * 3;
        return (Rgb[i], Rgb[i + 1], Rgb[i + 2]);
    }

    public static PngFile Decode(byte[] file)
    {
        if (!file.AsSpan(0, 8).SequenceEqual(Signature))
            throw new InvalidDataException("Not a PNG signature.");
        var types = new List<string>();
        var idat = new MemoryStream();
        int width = 0, height = 0;
        byte bitDepth = 0, colorType = 0;
        var position = 8;
        while (position < file.Length)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(position));
            var type = Encoding.ASCII.GetString(file, position + 4, 4);
            var data = file.AsSpan(position + 8, length);
            var stored = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(position + 8 + length));
            var computed = BitwiseCrc(file.AsSpan(position + 4, 4 + length));
            if (stored != computed)
                throw new InvalidDataException($"Chunk {type}: CRC {stored:X8} stored, {computed:X8} computed.");
            types.Add(type);
            switch (type)
            {
                case "IHDR":
                    width = BinaryPrimitives.ReadInt32BigEndian(data);
                    height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    bitDepth = data[8];
                    colorType = data[9];
                    break;
                case "IDAT":
                    idat.Write(data);
                    break;
            }
            position += 12 + length;
        }

        idat.Position = 0;
        using var inflated = new MemoryStream();
        using (var zlib = new ZLibStream(idat, CompressionMode.Decompress))
            zlib.CopyTo(inflated);
        return new PngFile(width, height, bitDepth, colorType, types, Unfilter(inflated.ToArray(), width, height));
    }

    private static byte[] Unfilter(byte[] filtered, int width, int height)
    {
        const int bytesPerPixel = 3;
        var stride = width * bytesPerPixel;
        if (filtered.Length != (stride + 1) * height)
            throw new InvalidDataException($"Inflated image data has {filtered.Length} bytes, expected {(stride + 1) * height}.");
        var rgb = new byte[stride * height];
        for (var y = 0; y < height; y++)
        {
            var filter = filtered[y * (stride + 1)];
            for (var i = 0; i < stride; i++)
            {
                var raw = filtered[y * (stride + 1) + 1 + i];
                int left = i >= bytesPerPixel ? rgb[y * stride + i - bytesPerPixel] : 0;
                int up = y > 0 ? rgb[(y - 1) * stride + i] : 0;
                int upLeft = y > 0 && i >= bytesPerPixel ? rgb[(y - 1) * stride + i - bytesPerPixel] : 0;
                var predictor = filter switch
                {
                    0 => 0,
                    1 => left,
                    2 => up,
                    3 => (left + up) / 2,
                    4 => Paeth(left, up, upLeft),
                    _ => throw new InvalidDataException($"Row {y} has filter type {filter}."),
                };
                rgb[y * stride + i] = (byte)(raw + predictor);
            }
        }
        return rgb;
    }

    private static int Paeth(int a, int b, int c)
    {
        var p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>CRC-32 one bit at a time, straight from the polynomial.</summary>
    public static uint BitwiseCrc(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var bit = 0; bit < 8; bit++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }
}
