using System.Globalization;
using ScottPlot;
using SkiaSharp;

namespace Training.Bench.Generation;

/// <summary>
/// generation.png, drawn with ScottPlot 5: three panels at the longest output length (first-token latency, decode
/// tokens/s, KV cache memory) against input length, one line per model and batch size (colour = model, dashes and
/// squares = the larger batch). Both axes are logarithmic: input lengths grow by 4x, and the values span decades.
/// </summary>
public static class GenerationPlot
{
    public const int PanelWidth = 440, PanelHeight = 400, TitleHeight = 40;
    private static readonly Color EncoderDecoderColor = new(31, 119, 180);
    private static readonly Color DecoderOnlyColor = new(230, 110, 20);

    public static byte[] Png(GenerationBenchResult result)
    {
        var outputLength = result.Measurements.Max(m => m.OutputLength);
        var batches = result.Measurements.Select(m => m.Batch).Distinct().Order().ToList();
        var shown = result.Measurements.Where(m => m.OutputLength == outputLength).ToList();
        var font = SansFont();

        Plot Panel(string title, string yLabel, Func<GenerationMeasurement, double> value, bool legend)
        {
            var plot = new Plot();
            plot.Font.Set(font);
            plot.Title(title);
            plot.XLabel("input tokens (log scale)");
            plot.YLabel(yLabel + " (log scale)");
            var ys = new List<double>();
            foreach (var model in new[] { result.EncoderDecoder.Name, result.DecoderOnly.Name })
                foreach (var batch in batches)
                {
                    var points = shown.Where(m => m.Model == model && m.Batch == batch).OrderBy(m => m.InputLength).ToList();
                    foreach (var p in points)
                        if (!(value(p) > 0) || !double.IsFinite(value(p)))
                            throw new ArgumentException($"Generation plot '{title}', {model} batch {batch}, input {p.InputLength}: {value(p)} cannot go on a log axis.");
                    ys.AddRange(points.Select(value));
                    var line = plot.Add.Scatter(points.Select(p => Math.Log2(p.InputLength)).ToArray(), points.Select(p => Math.Log10(value(p))).ToArray(),
                        model == result.EncoderDecoder.Name ? EncoderDecoderColor : DecoderOnlyColor);
                    line.LegendText = $"{model}, batch {batch}";
                    line.LineWidth = 2.5f;
                    line.MarkerSize = 8;
                    var larger = batch != batches[0];
                    line.MarkerShape = larger ? MarkerShape.FilledSquare : MarkerShape.FilledCircle;
                    line.LinePattern = larger ? LinePattern.Dashed : LinePattern.Solid;
                }
            // x ticked at the measured input lengths, y at 1-2-5 steps of each decade: readable values, not exponents.
            var xTicks = new ScottPlot.TickGenerators.NumericManual();
            foreach (var x in shown.Select(m => m.InputLength).Distinct().Order())
                xTicks.AddMajor(Math.Log2(x), x.ToString(CultureInfo.InvariantCulture));
            plot.Axes.Bottom.TickGenerator = xTicks;
            var yTicks = new ScottPlot.TickGenerators.NumericManual();
            foreach (var y in LogTicks(ys.Min(), ys.Max()))
                yTicks.AddMajor(Math.Log10(y), Label(y));
            plot.Axes.Left.TickGenerator = yTicks;
            plot.Axes.Margins(0.06, 0.08);
            if (legend) plot.ShowLegend(Alignment.UpperLeft);
            else plot.HideLegend();
            return plot;
        }

        var multiplot = new Multiplot();
        multiplot.Reset(Panel("First-token latency", "ms", m => m.FirstTokenMs, legend: true));
        multiplot.AddPlot(Panel("Decode throughput", "tokens/s", m => m.DecodeTokensPerSecond, legend: false));
        multiplot.AddPlot(Panel("KV cache memory", "MiB", m => GenerationBenchmark.Mib(m.KvCacheBytes), legend: false));
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();

        var (width, height) = (3 * PanelWidth, PanelHeight + TitleHeight);
        using var surface = SKSurface.Create(new SKImageInfo(width, height)) ?? throw new InvalidOperationException("SkiaSharp could not make a drawing surface.");
        surface.Canvas.Clear(SKColors.White);
        // The multiplot lays its panels out from the rectangle's size, drawing from the canvas origin: move the origin.
        surface.Canvas.Save();
        surface.Canvas.Translate(0, TitleHeight);
        multiplot.Render(surface.Canvas, new PixelRect(0, width, PanelHeight, 0));
        surface.Canvas.Restore();
        // A figure title above the three panels (a multiplot has none of its own); drawn last, as a plot clears its canvas.
        using (var typeface = SKTypeface.FromFamilyName(font, SKFontStyle.Bold))
        using (var titleFont = new SKFont(typeface, 20))
        using (var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true })
            surface.Canvas.DrawText($"Generation on CPU, {outputLength} new tokens: encoder-decoder vs decoder-only of equal size",
                width / 2f, TitleHeight * 0.7f, SKTextAlign.Center, titleFont, paint);
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    /// <summary>1, 2 and 5 times powers of ten between the extremes (one step beyond each); only powers when too many.</summary>
    public static IReadOnlyList<double> LogTicks(double min, double max)
    {
        var ticks = new List<double>();
        for (var k = (int)Math.Floor(Math.Log10(min)); k <= (int)Math.Ceiling(Math.Log10(max)); k++)
            foreach (var m in new[] { 1.0, 2, 5 })
                ticks.Add(m * Math.Pow(10, k));
        var inside = ticks.Where(t => t >= min / 1.5 && t <= max * 1.5).ToList();
        return inside.Count > 8 ? inside.Where(t => Math.Abs(Math.Log10(t) - Math.Round(Math.Log10(t))) < 1e-9).ToList() : inside;
    }

    /// <summary>2048, 20k, 1.5M: short labels for axis ticks.</summary>
    public static string Label(double value) => value switch
    {
        >= 1e6 => (value / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + "M",
        >= 1e4 => (value / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k",
        _ => value.ToString("0.###", CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// A sans-serif font that is installed (infra/install/prerequisites.sh installs DejaVu where fontconfig finds none),
    /// else ScottPlot's own choice.
    /// </summary>
    private static string SansFont()
    {
        var installed = SKFontManager.Default.FontFamilies.ToHashSet(StringComparer.OrdinalIgnoreCase);
        return new[] { "DejaVu Sans", "Liberation Sans", "Noto Sans" }.FirstOrDefault(installed.Contains) ?? Fonts.Default;
    }
}
