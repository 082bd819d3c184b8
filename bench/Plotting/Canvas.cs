namespace Training.Bench.Plotting;

/// <summary>
/// An RGB raster with the few drawing operations a line chart needs: rectangles, thick and dashed lines,
/// markers and bitmap text. Coordinates are pixels from the top-left corner; drawing outside is clipped.
/// </summary>
public sealed class Canvas
{
    public Canvas(int width, int height, Rgb background)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentException($"Canvas size {width}x{height} must be positive in both directions.");
        Width = width;
        Height = height;
        Pixels = new byte[width * height * 3];
        FillRectangle(0, 0, width, height, background);
    }

    public int Width { get; }
    public int Height { get; }

    /// <summary>Row-major RGB bytes, 3 per pixel.</summary>
    public byte[] Pixels { get; }

    public Rgb GetPixel(int x, int y)
    {
        if (x < 0 || y < 0 || x >= Width || y >= Height)
            throw new ArgumentOutOfRangeException(nameof(x), $"Pixel ({x}, {y}) is outside the {Width}x{Height} canvas.");
        var i = (y * Width + x) * 3;
        return new Rgb(Pixels[i], Pixels[i + 1], Pixels[i + 2]);
    }

    public void SetPixel(int x, int y, Rgb color)
    {
        if (x < 0 || y < 0 || x >= Width || y >= Height)
            return;
        var i = (y * Width + x) * 3;
        Pixels[i] = color.R;
        Pixels[i + 1] = color.G;
        Pixels[i + 2] = color.B;
    }

    public void FillRectangle(int x, int y, int width, int height, Rgb color)
    {
        for (var row = Math.Max(0, y); row < Math.Min(Height, y + height); row++)
            for (var column = Math.Max(0, x); column < Math.Min(Width, x + width); column++)
                SetPixel(column, row, color);
    }

    public void DrawRectangle(int x, int y, int width, int height, Rgb color)
    {
        DrawLine(x, y, x + width - 1, y, color);
        DrawLine(x, y + height - 1, x + width - 1, y + height - 1, color);
        DrawLine(x, y, x, y + height - 1, color);
        DrawLine(x + width - 1, y, x + width - 1, y + height - 1, color);
    }

    /// <summary>
    /// Bresenham's line, each point stamped as a thickness x thickness square. With dashLength > 0 the line
    /// alternates dashLength pixels drawn and dashLength skipped, counted along its major axis.
    /// </summary>
    public void DrawLine(int x0, int y0, int x1, int y1, Rgb color, int thickness = 1, int dashLength = 0)
    {
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0);
        int stepX = x0 < x1 ? 1 : -1, stepY = y0 < y1 ? 1 : -1;
        var error = dx + dy;
        var offset = (thickness - 1) / 2;
        for (var walked = 0; ; walked++)
        {
            if (dashLength <= 0 || walked / dashLength % 2 == 0)
                FillRectangle(x0 - offset, y0 - offset, thickness, thickness, color);
            if (x0 == x1 && y0 == y1)
                break;
            var doubled = 2 * error;
            if (doubled >= dy)
            {
                error += dy;
                x0 += stepX;
            }
            if (doubled <= dx)
            {
                error += dx;
                y0 += stepY;
            }
        }
    }

    public void FillCircle(int centerX, int centerY, int radius, Rgb color)
    {
        for (var y = -radius; y <= radius; y++)
            for (var x = -radius; x <= radius; x++)
                if (x * x + y * y <= radius * radius + radius)
                    SetPixel(centerX + x, centerY + y, color);
    }

    public void FillDiamond(int centerX, int centerY, int radius, Rgb color)
    {
        for (var y = -radius; y <= radius; y++)
            for (var x = -radius; x <= radius; x++)
                if (Math.Abs(x) + Math.Abs(y) <= radius)
                    SetPixel(centerX + x, centerY + y, color);
    }

    /// <summary>Text with its top-left corner at (x, y); each font pixel becomes a scale x scale block.</summary>
    public void DrawText(int x, int y, string text, Rgb color, int scale = 1)
    {
        for (var i = 0; i < text.Length; i++)
            for (var row = 0; row < BitmapFont.CellHeight; row++)
                for (var column = 0; column < BitmapFont.GlyphWidth; column++)
                    if (BitmapFont.IsInked(text[i], column, row))
                        FillRectangle(x + (i * BitmapFont.Advance + column) * scale, y + row * scale, scale, scale, color);
    }

    /// <summary>
    /// Text turned 90 degrees counter-clockwise (read from bottom to top), for vertical axis labels; (x, y) is the
    /// top-left corner of its box, which is CellHeight * scale wide and TextWidth tall.
    /// </summary>
    public void DrawTextVertical(int x, int y, string text, Rgb color, int scale = 1)
    {
        var length = BitmapFont.TextWidth(text, scale);
        for (var i = 0; i < text.Length; i++)
            for (var row = 0; row < BitmapFont.CellHeight; row++)
                for (var column = 0; column < BitmapFont.GlyphWidth; column++)
                    if (BitmapFont.IsInked(text[i], column, row))
                    {
                        var along = (i * BitmapFont.Advance + column) * scale; // distance from the text's start
                        FillRectangle(x + row * scale, y + length - along - scale, scale, scale, color);
                    }
    }
}
