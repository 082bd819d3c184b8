namespace Training.Orchestrator.Dashboard;

/// <summary>
/// Min/max downsampling onto a grid shared by every curve of a chart: the x range is cut into equal buckets and each
/// curve keeps, per bucket, its smallest and its largest value (in the order they occurred), so a spike or a divergence
/// survives however far a long curve is reduced, and all curves line up on one x array (what uPlot draws from).
/// Bucket b owns the two grid slots 2b and 2b+1, at a quarter and three quarters of its width.
/// </summary>
public static class Downsampler
{
    public static double[] Grid(double min, double max, int buckets)
    {
        var grid = new double[2 * buckets];
        var width = (max - min) / buckets;
        for (var b = 0; b < buckets; b++)
        {
            grid[2 * b] = min + width * (b + 0.25);
            grid[2 * b + 1] = min + width * (b + 0.75);
        }
        // With a single point in the range the grid collapses onto it.
        if (width == 0) Array.Fill(grid, min);
        return grid;
    }

    /// <summary>The curve's values on the grid slots (NaN where a bucket holds no point); NaN inputs are skipped.</summary>
    public static double[] MinMaxOnGrid(IReadOnlyList<double> x, IReadOnlyList<double> y, double min, double max, int buckets) =>
        MinMaxOnGrid(x as double[] ?? [.. x], y as double[] ?? [.. y], min, max, buckets);

    /// <inheritdoc cref="MinMaxOnGrid(IReadOnlyList{double}, IReadOnlyList{double}, double, double, int)"/>
    public static double[] MinMaxOnGrid(ReadOnlySpan<double> x, ReadOnlySpan<double> y, double min, double max, int buckets)
    {
        if (x.Length != y.Length) throw new ArgumentException("x and y must have the same length");
        if (buckets < 1) throw new ArgumentOutOfRangeException(nameof(buckets), "at least one bucket");
        var low = new double[buckets];
        var high = new double[buckets];
        var lowAt = new int[buckets];
        var highAt = new int[buckets];
        Array.Fill(lowAt, -1);
        var scale = max > min ? buckets / (max - min) : 0;
        for (var i = 0; i < x.Length; i++)
        {
            if (double.IsNaN(x[i]) || double.IsNaN(y[i])) continue;
            var b = Math.Clamp((int)((x[i] - min) * scale), 0, buckets - 1);
            if (lowAt[b] < 0)
            {
                low[b] = high[b] = y[i];
                lowAt[b] = highAt[b] = i;
                continue;
            }
            if (y[i] < low[b]) { low[b] = y[i]; lowAt[b] = i; }
            if (y[i] > high[b]) { high[b] = y[i]; highAt[b] = i; }
        }
        var slots = new double[2 * buckets];
        Array.Fill(slots, double.NaN);
        for (var b = 0; b < buckets; b++)
        {
            if (lowAt[b] < 0) continue;
            var lowFirst = lowAt[b] <= highAt[b];
            slots[2 * b] = lowFirst ? low[b] : high[b];
            // A bucket with one point keeps it once.
            if (lowAt[b] != highAt[b]) slots[2 * b + 1] = lowFirst ? high[b] : low[b];
        }
        return slots;
    }
}
