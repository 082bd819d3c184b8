using System.Text;
using NUnit.Framework;
using Training.Bench.Plotting;

namespace Training.Tests.Bench;

public class PngEncoderTests
{
    [Test]
    public void Compute_StandardCheckString_GivesPublishedCheckValue()
    {
        // The CRC-32 check value of "123456789" (ISO-HDLC, as used by PNG and zlib).
        Assert.That(Crc32.Compute(Encoding.ASCII.GetBytes("123456789")), Is.EqualTo(0xCBF43926u));
    }

    [Test]
    public void Compute_InTwoParts_EqualsOnePass()
    {
        var bytes = Encoding.ASCII.GetBytes("IEND and some more bytes");
        Assert.That(Crc32.Compute(bytes.AsSpan(4), Crc32.Compute(bytes.AsSpan(0, 4))), Is.EqualTo(Crc32.Compute(bytes)));
        Assert.That(Crc32.Compute(bytes), Is.EqualTo(PngFile.BitwiseCrc(bytes)));
    }

    [Test]
    public void Encode_RandomPixels_DecodesToTheSamePixels()
    {
        const int width = 13, height = 7;
        var pixels = new byte[width * height * 3];
        new Random(5).NextBytes(pixels);

        var png = PngFile.Decode(PngEncoder.Encode(width, height, pixels));

        Assert.That(png.ChunkTypes, Is.EqualTo(new[] { "IHDR", "IDAT", "IEND" }));
        Assert.That((png.Width, png.Height, png.BitDepth, png.ColorType), Is.EqualTo((width, height, (byte)8, (byte)2)));
        Assert.That(png.Rgb, Is.EqualTo(pixels));
    }

    [Test]
    public void Save_Canvas_WritesAFileThatDecodesToTheCanvas()
    {
        var canvas = new Canvas(40, 30, Rgb.White);
        canvas.FillRectangle(5, 6, 10, 4, new Rgb(200, 10, 30));
        var path = Path.Combine(Path.GetTempPath(), $"png-{Guid.NewGuid():N}.png");
        try
        {
            PngEncoder.Save(path, canvas);
            var png = PngFile.Decode(File.ReadAllBytes(path));

            Assert.That((png.Width, png.Height), Is.EqualTo((40, 30)));
            Assert.That(png.Pixel(5, 6), Is.EqualTo(((byte)200, (byte)10, (byte)30)));
            Assert.That(png.Pixel(14, 9), Is.EqualTo(((byte)200, (byte)10, (byte)30)));
            Assert.That(png.Pixel(15, 9), Is.EqualTo(((byte)255, (byte)255, (byte)255)));
            Assert.That(png.Rgb, Is.EqualTo(canvas.Pixels));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Encode_WrongPixelCount_ThrowsNamingTheSize()
    {
        var error = Assert.Throws<ArgumentException>(() => PngEncoder.Encode(4, 4, new byte[4 * 4 * 3 - 1]));
        Assert.That(error!.Message, Does.Contain("4x4").And.Contain("48"));
    }
}
