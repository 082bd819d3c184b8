using System.Globalization;

namespace Training.Bench.Plotting;

public enum MarkerShape
{
    Circle,
    Square,
    Diamond,
}

public readonly record struct ChartPoint(double X, double Y);

/// <summary>One line of a panel; series with the same label in several panels share one legend entry.</summary>
public sealed record ChartSeries(string Label, Rgb Color, bool Dashed, MarkerShape Marker, IReadOnlyList<ChartPoint> Points);

/// <summary>
/// One plot: x on a log2 axis ticked at the data's x values (input lengths), y on a log10 axis (1-2-5 ticks) or a
/// linear axis from zero.
/// </summary>
public sealed record ChartPanel(string Title, string XLabel, string YLabel, IReadOnlyList<ChartSeries> Series, bool LogY = true);

/// <summary>Renders panels side by side under a title, with one legend for all of them below.</summary>
public static class LineChart
{
    private const int TitleScale = 2;
    private const int LabelScale = 2;
    private const int TickScale = 1;
    private const int LegendTextOffset = 46;
    private const int MarginLeft = 78, MarginRight = 18, MarginTop = 34, MarginBottom = 56;

    public static Canvas Render(string title, IReadOnlyList<ChartPanel> panels, int panelWidth = 440, int panelHeight = 360)
    {
        if (panels.Count == 0)
            throw new ArgumentException("A chart needs at least one panel.", nameof(panels));
        foreach (var panel in panels)
            Validate(panel);

        var legend = panels.SelectMany(p => p.Series).DistinctBy(s => s.Label).ToList();
        const int titleHeight = 40, legendRowHeight = 24;
        // As many columns as the widest entry allows, then balanced so that the rows are evenly filled.
        var entryWidth = LegendTextOffset + legend.Max(s => BitmapFont.TextWidth(s.Label, LabelScale)) + 30;
        var legendColumns = Math.Clamp(panels.Count * panelWidth / entryWidth, 1, legend.Count);
        var legendRows = (legend.Count + legendColumns - 1) / legendColumns;
        legendColumns = (legend.Count + legendRows - 1) / legendRows;
        var canvas = new Canvas(panels.Count * panelWidth, titleHeight + panelHeight + legendRows * legendRowHeight + 12, Rgb.White);

        canvas.DrawText((canvas.Width - BitmapFont.TextWidth(title, TitleScale)) / 2, 12, title, Rgb.Black, TitleScale);
        for (var i = 0; i < panels.Count; i++)
            DrawPanel(canvas, panels[i], i * panelWidth, titleHeight, panelWidth, panelHeight);

        var legendTop = titleHeight + panelHeight + 4;
        var columnWidth = canvas.Width / legendColumns;
        for (var i = 0; i < legend.Count; i++)
        {
            var x = i % legendColumns * columnWidth + 24;
            var y = legendTop + i / legendColumns * legendRowHeight + legendRowHeight / 2;
            canvas.DrawLine(x, y, x + 36, y, legend[i].Color, thickness: 3, dashLength: legend[i].Dashed ? 6 : 0);
            DrawMarker(canvas, legend[i].Marker, x + 18, y, legend[i].Color);
            canvas.DrawText(x + LegendTextOffset, y - BitmapFont.GlyphHeight * LabelScale / 2, legend[i].Label, Rgb.Black, LabelScale);
        }
        return canvas;
    }

    private static void DrawPanel(Canvas canvas, ChartPanel panel, int left, int top, int width, int height)
    {
        int plotLeft = left + MarginLeft, plotTop = top + MarginTop;
        int plotWidth = width - MarginLeft - MarginRight, plotHeight = height - MarginTop - MarginBottom;
        var points = panel.Series.SelectMany(s => s.Points).ToList();

        var xTicks = points.Select(p => p.X).Distinct().Order().ToList();
        var (xLow, xHigh) = Padded(Math.Log2(xTicks[0]), Math.Log2(xTicks[^1]), 0.08);
        double yMin = points.Min(p => p.Y), yMax = points.Max(p => p.Y);
        var (yLow, yHigh, yTicks) = panel.LogY ? LogAxis(yMin, yMax) : LinearAxis(yMax);

        int ToX(double x) => plotLeft + (int)Math.Round((Math.Log2(x) - xLow) / (xHigh - xLow) * (plotWidth - 1));
        int ToY(double y)
        {
            var position = panel.LogY ? Math.Log10(y) : y;
            return plotTop + plotHeight - 1 - (int)Math.Round((position - yLow) / (yHigh - yLow) * (plotHeight - 1));
        }

        foreach (var tick in yTicks)
        {
            var y = ToY(tick);
            canvas.DrawLine(plotLeft, y, plotLeft + plotWidth - 1, y, Rgb.Grid);
            var label = FormatNumber(tick);
            canvas.DrawLine(plotLeft - 4, y, plotLeft, y, Rgb.Axis);
            canvas.DrawText(plotLeft - 7 - BitmapFont.TextWidth(label, TickScale), y - BitmapFont.GlyphHeight * TickScale / 2, label, Rgb.Axis, TickScale);
        }
        foreach (var tick in xTicks)
        {
            var x = ToX(tick);
            canvas.DrawLine(x, plotTop, x, plotTop + plotHeight - 1, Rgb.Grid);
            var label = FormatNumber(tick);
            canvas.DrawLine(x, plotTop + plotHeight - 1, x, plotTop + plotHeight + 3, Rgb.Axis);
            canvas.DrawText(x - BitmapFont.TextWidth(label, TickScale) / 2, plotTop + plotHeight + 7, label, Rgb.Axis, TickScale);
        }
        canvas.DrawRectangle(plotLeft, plotTop, plotWidth, plotHeight, Rgb.Axis);

        canvas.DrawText(plotLeft + (plotWidth - BitmapFont.TextWidth(panel.Title, LabelScale)) / 2, top + 10, panel.Title, Rgb.Black, LabelScale);
        canvas.DrawText(plotLeft + (plotWidth - BitmapFont.TextWidth(panel.XLabel, LabelScale)) / 2, plotTop + plotHeight + 24, panel.XLabel, Rgb.Black, LabelScale);
        canvas.DrawTextVertical(left + 8, plotTop + (plotHeight - BitmapFont.TextWidth(panel.YLabel, LabelScale)) / 2, panel.YLabel, Rgb.Black, LabelScale);

        foreach (var series in panel.Series)
        {
            var mapped = series.Points.OrderBy(p => p.X).Select(p => (X: ToX(p.X), Y: ToY(p.Y))).ToList();
            for (var i = 1; i < mapped.Count; i++)
                canvas.DrawLine(mapped[i - 1].X, mapped[i - 1].Y, mapped[i].X, mapped[i].Y, series.Color, thickness: 3, dashLength: series.Dashed ? 8 : 0);
            foreach (var (x, y) in mapped)
                DrawMarker(canvas, series.Marker, x, y, series.Color);
        }
    }

    private static void DrawMarker(Canvas canvas, MarkerShape marker, int x, int y, Rgb color)
    {
        switch (marker)
        {
            case MarkerShape.Circle:
                canvas.FillCircle(x, y, 4, color);
                break;
            case MarkerShape.Square:
                canvas.FillRectangle(x - 4, y - 4, 9, 9, color);
                break;
            case MarkerShape.Diamond:
                canvas.FillDiamond(x, y, 5, color);
                break;
            default:
                throw new ArgumentException($"MarkerShape {marker} is not known.", nameof(marker));
        }
    }

    private static void Validate(ChartPanel panel)
    {
        if (panel.Series.Count == 0 || panel.Series.All(s => s.Points.Count == 0))
            throw new ArgumentException($"Chart panel '{panel.Title}' has no points.", nameof(panel));
        foreach (var series in panel.Series)
            foreach (var point in series.Points)
            {
                if (!(point.X > 0) || !double.IsFinite(point.X))
                    throw new ArgumentException($"Chart panel '{panel.Title}', series '{series.Label}': x = {point.X} must be positive and finite (log axis).", nameof(panel));
                if (!double.IsFinite(point.Y) || (panel.LogY ? !(point.Y > 0) : point.Y < 0))
                    throw new ArgumentException(
                        $"Chart panel '{panel.Title}', series '{series.Label}': y = {point.Y} must be finite and {(panel.LogY ? "positive (log axis)" : "non-negative")}.", nameof(panel));
            }
        foreach (var text in new[] { panel.Title, panel.XLabel, panel.YLabel }.Concat(panel.Series.Select(s => s.Label)))
        {
            var unsupported = text.FirstOrDefault(c => !BitmapFont.Supports(c));
            if (unsupported != default)
                throw new ArgumentException($"Chart text \"{text}\" has '{unsupported}', which the bitmap font cannot draw.", nameof(panel));
        }
    }

    private static (double Low, double High) Padded(double low, double high, double fraction)
    {
        if (high - low < 1e-9)
            return (low - 0.5, high + 0.5);
        var pad = (high - low) * fraction;
        return (low - pad, high + pad);
    }

    /// <summary>log10 range padded by 5%, ticks at 1, 2 and 5 times powers of ten (only powers when that is too many).</summary>
    private static (double Low, double High, List<double> Ticks) LogAxis(double min, double max)
    {
        var (low, high) = Padded(Math.Log10(min), Math.Log10(max), 0.05);
        var ticks = new List<double>();
        for (var decade = (int)Math.Floor(low); decade <= (int)Math.Ceiling(high); decade++)
            foreach (var mantissa in new[] { 1, 2, 5 })
            {
                var value = mantissa * Math.Pow(10, decade);
                if (Math.Log10(value) >= low && Math.Log10(value) <= high)
                    ticks.Add(value);
            }
        if (ticks.Count > 9)
            ticks = ticks.Where(t => Math.Abs(Math.Log10(t) - Math.Round(Math.Log10(t))) < 1e-9).ToList();
        return (low, high, ticks);
    }

    /// <summary>From zero to 10% above the maximum, ticks at a 1-2-5 step giving about five intervals.</summary>
    private static (double Low, double High, List<double> Ticks) LinearAxis(double max)
    {
        var high = max > 0 ? max * 1.1 : 1;
        var rough = high / 5;
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        var step = new[] { 1, 2, 5, 10 }.Select(m => m * magnitude).First(s => s >= rough);
        var ticks = new List<double>();
        for (var value = 0.0; value <= high + step * 1e-9; value += step)
            ticks.Add(value);
        return (0, high, ticks);
    }

    /// <summary>Short tick labels: 2048, 0.5, 20k, 1.5M.</summary>
    public static string FormatNumber(double value)
    {
        var magnitude = Math.Abs(value);
        if (magnitude >= 1e6)
            return (value / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M";
        if (magnitude >= 1e4)
            return (value / 1e3).ToString("0.##", CultureInfo.InvariantCulture) + "k";
        if (magnitude >= 1 || magnitude == 0)
            return value.ToString("0.##", CultureInfo.InvariantCulture);
        return value.ToString(magnitude >= 0.01 ? "0.###" : "G2", CultureInfo.InvariantCulture);
    }
}
