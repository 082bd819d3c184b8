using NUnit.Framework;
using Training.Bench.Plotting;

namespace Training.Tests.Bench;

public class LineChartTests
{
    private static readonly Rgb Blue = new(31, 119, 180);
    private static readonly Rgb Orange = new(230, 110, 20);

    private static ChartPanel Panel(string title, bool logY, params ChartSeries[] series) => new(title, "input tokens", "ms", series, logY);

    private static ChartSeries Line(string label, Rgb color, bool dashed, params double[] ys) =>
        new(label, color, dashed, MarkerShape.Circle, ys.Select((y, i) => new ChartPoint(128 << (2 * i), y)).ToList());

    private static int Count(Canvas canvas, Rgb color) =>
        Enumerable.Range(0, canvas.Height).Sum(y => Enumerable.Range(0, canvas.Width).Count(x => canvas.GetPixel(x, y) == color));

    [Test]
    public void Render_TwoPanels_IsTheirWidthsSideBySideAndDrawsEverySeries()
    {
        var canvas = LineChart.Render("Latency",
        [
            Panel("log", logY: true, Line("a", Blue, false, 10, 40, 300), Line("b", Orange, true, 20, 30, 2000)),
            Panel("linear", logY: false, Line("a", Blue, false, 1, 2, 3)),
        ], panelWidth: 300, panelHeight: 240);

        Assert.That(canvas.Width, Is.EqualTo(600));
        Assert.That(canvas.Height, Is.GreaterThan(240));
        Assert.That(Count(canvas, Blue), Is.GreaterThan(100));
        Assert.That(Count(canvas, Orange), Is.GreaterThan(100));

        var png = PngFile.Decode(PngEncoder.Encode(canvas.Width, canvas.Height, canvas.Pixels));
        Assert.That((png.Width, png.Height), Is.EqualTo((canvas.Width, canvas.Height)));
    }

    [Test]
    public void Render_HigherValue_IsDrawnHigherOnTheCanvas()
    {
        var canvas = LineChart.Render("t", [Panel("p", logY: true, Line("low", Blue, false, 1, 1, 1), Line("high", Orange, false, 1000, 1000, 1000))],
            panelWidth: 300, panelHeight: 300);

        double MeanRow(Rgb color)
        {
            var rows = Enumerable.Range(0, 300).SelectMany(y => Enumerable.Range(0, canvas.Width).Where(x => canvas.GetPixel(x, y) == color).Select(_ => y)).ToList();
            return rows.Average();
        }
        Assert.That(MeanRow(Orange), Is.LessThan(MeanRow(Blue) - 100));
    }

    [Test]
    public void Render_ZeroOnALogAxis_ThrowsNamingPanelAndSeries()
    {
        var error = Assert.Throws<ArgumentException>(() => LineChart.Render("t", [Panel("Decode", logY: true, Line("b8", Blue, false, 5, 0))]));
        Assert.That(error!.Message, Does.Contain("Decode").And.Contain("b8").And.Contain("y = 0"));
    }

    [TestCase(2048, "2048")]
    [TestCase(20000, "20k")]
    [TestCase(1500000, "1.5M")]
    [TestCase(0.5, "0.5")]
    [TestCase(0.002, "0.002")]
    [TestCase(0, "0")]
    public void FormatNumber_Value_GivesShortLabel(double value, string expected) =>
        Assert.That(LineChart.FormatNumber(value), Is.EqualTo(expected));
}
