using System.Globalization;

namespace Training.Bench.Support;

/// <summary>
/// A reference and a subject measured in alternation (A B A B ...), so that whatever else the shared machine does
/// moves both sides of each pair alike; the headline is the median of the per-pair ratios subject / reference.
/// Both sides return a rate (higher is faster). A spread of the per-pair ratios wider than <see cref="MaxSpread"/>
/// (max / min - 1) means the machine changed under the pairs too much to quote one figure: <see cref="Stable"/> is false
/// and the reports print that instead of the headline.
/// </summary>
public sealed record Interleaved(
    IReadOnlyList<double> Reference,
    IReadOnlyList<double> Subject,
    IReadOnlyList<double> Ratios,
    LoadAverage LoadAtStart,
    LoadAverage LoadAtEnd)
{
    public const double MaxSpread = 0.25;

    public double MedianRatio => Stats.Median(Ratios);
    public double MinRatio => Ratios.Min();
    public double MaxRatio => Ratios.Max();
    public double LowerQuartile => Stats.Quantile(Ratios, 0.25);
    public double UpperQuartile => Stats.Quantile(Ratios, 0.75);

    /// <summary>max / min - 1 of the per-pair ratios: 0.25 means the best pair is 25% above the worst.</summary>
    public double Spread => MaxRatio / MinRatio - 1;

    public bool Stable => Spread <= MaxSpread;

    /// <summary>
    /// Runs <paramref name="warmup"/> untimed pairs, then <paramref name="pairs"/> timed ones, reference first in each.
    /// <paramref name="afterPair"/> sees the pair's index (for samples taken along the run, such as memory).
    /// </summary>
    public static Interleaved Measure(int pairs, Func<double> reference, Func<double> subject, int warmup = 1, Action<int>? afterPair = null)
    {
        if (pairs < 2) throw new ArgumentOutOfRangeException(nameof(pairs), pairs, "At least two pairs are needed for a spread.");
        for (var i = 0; i < warmup; i++)
        {
            reference();
            subject();
        }
        var start = LoadAverage.Read();
        var a = new List<double>(pairs);
        var b = new List<double>(pairs);
        for (var i = 0; i < pairs; i++)
        {
            a.Add(reference());
            b.Add(subject());
            afterPair?.Invoke(i);
        }
        return new Interleaved(a, b, a.Zip(b, (r, s) => s / r).ToList(), start, LoadAverage.Read());
    }

    /// <summary>The headline as text: "0.41 (0.37-0.44, IQR 0.39-0.42, 7 pairs)", or why there is none.</summary>
    public string Headline(Func<double, string> format) => Stable
        ? $"{format(MedianRatio)} ({Range(format)}, {Ratios.Count} pairs)"
        : string.Create(CultureInfo.InvariantCulture, $"no headline: per-pair ratios spread {Spread * 100:F0}% (over {MaxSpread * 100:F0}%): {Range(format)}, median {format(MedianRatio)}");

    /// <summary>The spread for a table cell: "range 0.37-0.44, IQR 0.39-0.42, spread 19% (limit 25%)".</summary>
    public string Detail(Func<double, string> format) =>
        string.Create(CultureInfo.InvariantCulture, $"range {format(MinRatio)}-{format(MaxRatio)}, IQR {format(LowerQuartile)}-{format(UpperQuartile)}, spread {Spread * 100:F0}% (limit {MaxSpread * 100:F0}%)");

    private string Range(Func<double, string> format) => $"{format(MinRatio)}-{format(MaxRatio)}, IQR {format(LowerQuartile)}-{format(UpperQuartile)}";

    /// <summary>The figures for a result file, under one name for every bench part.</summary>
    public object ToJson(string order) => new
    {
        order,
        pairs = Ratios.Count,
        reference = Reference,
        subject = Subject,
        ratios = Ratios,
        // The figure to quote, or null: a median over pairs this far apart is not one.
        headline_ratio = Stable ? MedianRatio : (double?)null,
        median_ratio = MedianRatio,
        min_ratio = MinRatio,
        max_ratio = MaxRatio,
        iqr = new[] { LowerQuartile, UpperQuartile },
        spread_max_over_min = Spread,
        spread_limit = MaxSpread,
        stable = Stable,
        load_average_start = LoadAtStart.ToJson(),
        load_average_end = LoadAtEnd.ToJson(),
    };
}

/// <summary>The 1, 5 and 15-minute load averages of /proc/loadavg (null where there is no such file).</summary>
public sealed record LoadAverage(double? One, double? Five, double? Fifteen)
{
    public static LoadAverage Read()
    {
        if (!File.Exists("/proc/loadavg")) return new LoadAverage(null, null, null);
        var parts = File.ReadAllText("/proc/loadavg").Split(' ');
        double Part(int i) => double.Parse(parts[i], CultureInfo.InvariantCulture);
        return new LoadAverage(Part(0), Part(1), Part(2));
    }

    public object ToJson() => new { one_minute = One, five_minutes = Five, fifteen_minutes = Fifteen };

    public override string ToString() => One is null
        ? "unknown"
        : string.Create(CultureInfo.InvariantCulture, $"{One:F2} / {Five:F2} / {Fifteen:F2}");
}

public static class Stats
{
    public static double Median(IReadOnlyList<double> values) => Quantile(values, 0.5);

    /// <summary>Linear interpolation between the closest ranks (numpy's default).</summary>
    public static double Quantile(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0) throw new ArgumentException("No values.", nameof(values));
        var sorted = values.OrderBy(v => v).ToArray();
        var position = q * (sorted.Length - 1);
        var low = (int)Math.Floor(position);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }
}
