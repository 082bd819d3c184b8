using NUnit.Framework;
using Training.Bench.Plotting;

namespace Training.Tests.Bench;

public class CanvasTests
{
    private static readonly Rgb Ink = new(10, 20, 30);

    private static int CountInk(Canvas canvas) =>
        Enumerable.Range(0, canvas.Height).Sum(y => Enumerable.Range(0, canvas.Width).Count(x => canvas.GetPixel(x, y) == Ink));

    private static int GlyphCells(char c) =>
        Enumerable.Range(0, BitmapFont.CellHeight).Sum(row => Enumerable.Range(0, BitmapFont.GlyphWidth).Count(column => BitmapFont.IsInked(c, column, row)));

    [Test]
    public void DrawText_ScaledGlyph_InksEachGlyphCellAsABlock()
    {
        var canvas = new Canvas(30, 30, Rgb.White);
        canvas.DrawText(3, 4, "A", Ink, scale: 2);

        Assert.That(CountInk(canvas), Is.EqualTo(4 * GlyphCells('A')));
        // 'A' row 0 is ".###.": cells 1..3 inked, so pixels x 5..10 at y 4..5.
        Assert.That(canvas.GetPixel(5, 4), Is.EqualTo(Ink));
        Assert.That(canvas.GetPixel(10, 5), Is.EqualTo(Ink));
        Assert.That(canvas.GetPixel(3, 4), Is.EqualTo(Rgb.White));
        // Row 3 is "#####": the full width 3..12 at y 10.
        Assert.That(canvas.GetPixel(12, 10), Is.EqualTo(Ink));
    }

    [Test]
    public void DrawTextVertical_Letter_IsTurnedCounterClockwise()
    {
        var canvas = new Canvas(20, 20, Rgb.White);
        canvas.DrawTextVertical(2, 3, "L", Ink);

        // 'L': column 0 inked in every row, the bottom row inked in every column. Turned counter-clockwise the
        // glyph's left edge becomes the bottom edge (y 3 + 4) and its bottom row becomes the right edge (x 2 + 6).
        Assert.That(Enumerable.Range(0, 7).All(row => canvas.GetPixel(2 + row, 3 + 4) == Ink), Is.True);
        Assert.That(Enumerable.Range(0, 5).All(column => canvas.GetPixel(2 + 6, 3 + 4 - column) == Ink), Is.True);
        Assert.That(canvas.GetPixel(2, 3), Is.EqualTo(Rgb.White));
        Assert.That(CountInk(canvas), Is.EqualTo(GlyphCells('L')));
    }

    [Test]
    public void DrawLine_Solid_ConnectsBothEnds()
    {
        var canvas = new Canvas(20, 20, Rgb.White);
        canvas.DrawLine(1, 2, 15, 9, Ink);

        Assert.That(canvas.GetPixel(1, 2), Is.EqualTo(Ink));
        Assert.That(canvas.GetPixel(15, 9), Is.EqualTo(Ink));
        Assert.That(CountInk(canvas), Is.EqualTo(15)); // one pixel per step of the major axis
    }

    [Test]
    public void DrawLine_Dashed_AlternatesDrawnAndSkippedRuns()
    {
        var canvas = new Canvas(30, 3, Rgb.White);
        canvas.DrawLine(0, 1, 23, 1, Ink, dashLength: 4);

        var drawn = Enumerable.Range(0, 24).Select(x => canvas.GetPixel(x, 1) == Ink).ToArray();
        Assert.That(drawn, Is.EqualTo(Enumerable.Range(0, 24).Select(x => x / 4 % 2 == 0).ToArray()));
    }

    [Test]
    public void DrawLine_OutsideTheCanvas_IsClipped()
    {
        var canvas = new Canvas(10, 10, Rgb.White);
        canvas.DrawLine(-20, 5, 30, 5, Ink, thickness: 3);

        Assert.That(CountInk(canvas), Is.EqualTo(30));
    }

    [Test]
    public void BitmapFont_PrintableAscii_HasADistinctGlyphForEveryLetterAndDigit()
    {
        var printable = Enumerable.Range(32, 95).Select(i => (char)i).ToList();
        Assert.That(printable.Where(c => !BitmapFont.Supports(c)), Is.Empty);

        var alphanumeric = printable.Where(char.IsLetterOrDigit).ToList();
        var shapes = alphanumeric.Select(c => string.Concat(
            Enumerable.Range(0, BitmapFont.CellHeight * BitmapFont.GlyphWidth)
                .Select(i => BitmapFont.IsInked(c, i % BitmapFont.GlyphWidth, i / BitmapFont.GlyphWidth) ? '#' : '.'))).ToList();
        Assert.That(shapes.Distinct().Count(), Is.EqualTo(alphanumeric.Count));
        Assert.That(alphanumeric.All(c => GlyphCells(c) > 0), Is.True);
    }

    [Test]
    public void DrawText_CharacterOutsideTheFont_ThrowsNamingIt()
    {
        var canvas = new Canvas(10, 10, Rgb.White);
        var error = Assert.Throws<ArgumentException>(() => canvas.DrawText(0, 0, "µs", Ink));
        Assert.That(error!.Message, Does.Contain("'µ'"));
    }
}
