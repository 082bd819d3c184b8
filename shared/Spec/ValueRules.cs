using System.Globalization;
using System.Text.RegularExpressions;

namespace Training.Shared.Spec;

/// <summary>
/// What one schema key accepts. A rule turns a written scalar into a typed value (long, double or string)
/// or says why it cannot, always naming what is allowed.
/// </summary>
internal abstract record ValueRule
{
    /// <summary>What is allowed, as a phrase: "an integer >= 1", "one of: gelu, swiglu".</summary>
    public abstract string Allowed { get; }

    /// <summary>Wrong type ("abc" for an integer) or not a permitted value; null message means ok.</summary>
    public abstract (object? Value, string? Error) Convert(SourceScalar scalar);

    /// <summary>A typed value as YAML text (the inverse of <see cref="Convert"/>).</summary>
    public virtual string Format(object value) => System.Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";

    /// <summary>A schema default (long, double or a YAML name) as the typed value the spec holds.</summary>
    public virtual object FromDefault(object value) => value;

    protected static string Show(SourceScalar scalar) =>
        scalar.IsQuoted ? $"\"{scalar.Text}\" (a quoted string)" : $"\"{scalar.Text}\"";
}

/// <param name="OpenEnded">Max is a limit that keeps counts from overflowing rather than part of the meaning: the
/// allowed values read "an integer >= Min", and a larger value is told the limit.</param>
internal sealed record IntegerRule(long Min, long Max, bool OpenEnded = false) : ValueRule
{
    /// <summary>At least <paramref name="min"/>, up to <paramref name="limit"/> (by default the 32-bit maximum the spec's fields hold).</summary>
    public static IntegerRule AtLeast(long min, long limit = int.MaxValue) => new(min, limit, OpenEnded: true);

    public override string Allowed => (Min, Max) switch
    {
        (long.MinValue, long.MaxValue) => "an integer",
        _ when OpenEnded => $"an integer >= {Min}",
        _ => $"an integer in [{Min}, {Max}]",
    };

    public override (object? Value, string? Error) Convert(SourceScalar scalar)
    {
        var text = scalar.Text ?? "";
        if (!scalar.IsQuoted && IsWholeNumber(text)
            && !long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
            return (null, $"{text} is out of range: {Range}");
        if (scalar.IsQuoted || !long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            return (null, $"expected {Allowed}, got {Show(scalar)}");
        if (value < Min) return (null, $"{value} is out of range: expected {Allowed}");
        if (value > Max) return (null, $"{value} is out of range: {Range}");
        return (value, null);
    }

    public override string Format(object value) => SpecText.Integer(System.Convert.ToInt64(value, CultureInfo.InvariantCulture));

    private string Range => OpenEnded ? $"expected {Allowed}, at most {Max}" : $"expected {Allowed}";

    private static bool IsWholeNumber(string text) =>
        text.Length > 0 && text.TrimStart('-', '+').Length > 0 && text.TrimStart('-', '+').All(char.IsAsciiDigit);
}

/// <summary>A finite real number within bounds that are each open or closed.</summary>
internal sealed record NumberRule(double Min, bool MinInclusive, double Max, bool MaxInclusive) : ValueRule
{
    public static NumberRule Positive => new(0, false, double.PositiveInfinity, false);
    public static NumberRule NonNegative => new(0, true, double.PositiveInfinity, false);
    public static NumberRule AtLeast(double min) => new(min, true, double.PositiveInfinity, false);
    public static NumberRule Between(double min, bool minInclusive, double max, bool maxInclusive) =>
        new(min, minInclusive, max, maxInclusive);

    public override string Allowed
    {
        get
        {
            var min = Min.ToString(CultureInfo.InvariantCulture);
            var max = Max.ToString(CultureInfo.InvariantCulture);
            if (double.IsPositiveInfinity(Max)) return $"a number {(MinInclusive ? ">=" : ">")} {min}";
            return $"a number in {(MinInclusive ? "[" : "(")}{min}, {max}{(MaxInclusive ? "]" : ")")}";
        }
    }

    public override (object? Value, string? Error) Convert(SourceScalar scalar)
    {
        if (scalar.IsQuoted
            || !double.TryParse(scalar.Text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            || !double.IsFinite(value))
            return (null, $"expected {Allowed}, got {Show(scalar)}");
        if (!Contains(value))
            return (null, $"{SpecText.Number(value)} is out of range: expected {Allowed}");
        return (value, null);
    }

    public override string Format(object value) => SpecText.Number(System.Convert.ToDouble(value, CultureInfo.InvariantCulture));

    public bool Contains(double value) =>
        (MinInclusive ? value >= Min : value > Min) && (MaxInclusive ? value <= Max : value < Max);
}

/// <summary>One of a fixed set of names (quoted or not), with a "did you mean" for near misses. With
/// <paramref name="Values"/>, each name stands for a value (an enum member): the one place a YAML spelling is defined.</summary>
internal sealed record ChoiceRule(IReadOnlyList<string> Choices, IReadOnlyList<object>? Values = null) : ValueRule
{
    public static ChoiceRule Of<T>(params (string Name, T Value)[] names) where T : notnull =>
        new(names.Select(n => n.Name).ToList(), names.Select(n => (object)n.Value).ToList());

    public override string Allowed => "one of: " + string.Join(", ", Choices);

    /// <summary>The value a name stands for.</summary>
    public object ValueOf(string name) => Values is null ? name : Values[IndexOf(Choices, name)];

    /// <summary>The name of a value.</summary>
    public string NameOf(object value) => Values is null ? (string)value : Choices[IndexOf(Values, value)];

    public override string Format(object value) => NameOf(value);

    public override object FromDefault(object value) => value is string name ? ValueOf(name) : value;

    private static int IndexOf<T>(IReadOnlyList<T> items, T item)
    {
        for (var i = 0; i < items.Count; i++)
            if (Equals(items[i], item)) return i;
        throw new ArgumentException($"{item} is not among {string.Join(", ", items)}", nameof(item));
    }

    public override (object? Value, string? Error) Convert(SourceScalar scalar)
    {
        var text = scalar.Text!;
        if (Choices.Contains(text)) return (ValueOf(text), null);
        var nearest = Suggest.Nearest(text, Choices, 1);
        var hint = nearest.Count > 0 ? $"; did you mean \"{nearest[0]}\"?" : "";
        return (null, $"unknown value \"{text}\"{hint} allowed: {string.Join(", ", Choices)}");
    }
}

/// <summary>A string matching a pattern (experiment name, device).</summary>
internal sealed record PatternRule(Regex Pattern, string Description) : ValueRule
{
    public override string Allowed => Description;

    public override (object? Value, string? Error) Convert(SourceScalar scalar) =>
        Pattern.IsMatch(scalar.Text!)
            ? (scalar.Text, null)
            : (null, $"\"{scalar.Text}\" is not valid: expected {Allowed}");
}

/// <summary>A path or a list of paths (files, directories, globs); handled by the binder, not per scalar.</summary>
internal sealed record PathListRule : ValueRule
{
    public override string Allowed => "a path or a list of paths (files, directories of *.parquet, globs with * ? **)";

    public override (object? Value, string? Error) Convert(SourceScalar scalar) =>
        string.IsNullOrWhiteSpace(scalar.Text) ? (null, $"expected {Allowed}, got an empty string") : (scalar.Text, null);
}

/// <summary>Nearest names by edit distance, for "did you mean" hints.</summary>
internal static class Suggest
{
    public static IReadOnlyList<string> Nearest(string written, IEnumerable<string> candidates, int count)
    {
        // Near enough to be a typo: a third of the longer name, at least 2 edits.
        return candidates
            .Select(c => (Name: c, Distance: Distance(written, c)))
            .Where(c => c.Distance <= Math.Max(2, Math.Max(written.Length, c.Name.Length) / 3))
            .OrderBy(c => c.Distance)
            .Take(count)
            .Select(c => c.Name)
            .ToList();
    }

    /// <summary>The candidates ordered by closeness, without a cut-off (for listing "nearest allowed keys").</summary>
    public static IReadOnlyList<string> Closest(string written, IEnumerable<string> candidates, int count) =>
        candidates.OrderBy(c => Distance(written, c)).ThenBy(c => c, StringComparer.Ordinal).Take(count).ToList();

    /// <summary>Levenshtein distance, case-insensitive.</summary>
    public static int Distance(string a, string b)
    {
        a = a.ToLowerInvariant();
        b = b.ToLowerInvariant();
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
