using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Training.Bench.Plotting;

/// <summary>
/// Writes 8-bit RGB PNG files (colour type 2, no interlace): signature, IHDR, one zlib-compressed IDAT, IEND.
/// Every row uses the Sub filter, which turns the flat areas of a chart into runs of zeros that deflate well.
/// </summary>
public static class PngEncoder
{
    public static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <param name="rgb">row-major pixels, 3 bytes each, width * height * 3 bytes</param>
    public static byte[] Encode(int width, int height, ReadOnlySpan<byte> rgb)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentException($"PNG size {width}x{height} must be positive in both directions.");
        if (rgb.Length != (long)width * height * 3)
            throw new ArgumentException($"PNG of {width}x{height} needs {(long)width * height * 3} RGB bytes, got {rgb.Length}.", nameof(rgb));

        using var file = new MemoryStream();
        file.Write(Signature);

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = 8;  // bits per channel
        header[9] = 2;  // colour type: RGB
        header[10] = 0; // compression: deflate
        header[11] = 0; // filter method 0 (five per-row filter types)
        header[12] = 0; // no interlace
        WriteChunk(file, "IHDR", header);
        WriteChunk(file, "IDAT", CompressRows(width, height, rgb));
        WriteChunk(file, "IEND", []);
        return file.ToArray();
    }

    public static void Save(string path, Canvas canvas) => File.WriteAllBytes(path, Encode(canvas.Width, canvas.Height, canvas.Pixels));

    /// <summary>Each row: filter byte 1 (Sub), then every byte minus the same channel of the pixel to its left.</summary>
    private static byte[] CompressRows(int width, int height, ReadOnlySpan<byte> rgb)
    {
        var stride = width * 3;
        var filtered = new byte[(stride + 1) * height];
        for (var y = 0; y < height; y++)
        {
            var row = rgb.Slice(y * stride, stride);
            var target = filtered.AsSpan(y * (stride + 1), stride + 1);
            target[0] = 1;
            for (var i = 0; i < stride; i++)
                target[i + 1] = (byte)(row[i] - (i >= 3 ? row[i - 3] : 0));
        }
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(filtered);
        return compressed.ToArray();
    }

    /// <summary>Length (big-endian), type, data, then the CRC of type and data.</summary>
    private static void WriteChunk(Stream stream, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        stream.Write(word);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        stream.Write(typeBytes);
        stream.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.Compute(data, Crc32.Compute(typeBytes)));
        stream.Write(word);
    }
}
