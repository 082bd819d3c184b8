namespace Training.Shared.Spec;

/// <summary>One problem in an experiment file, with the place it was written (1-based line and column).</summary>
public sealed record SpecError(string File, int Line, int Column, string Key, string Message)
{
    private const int MaxMessage = 2000;
    private const int MaxKey = 200;

    /// <summary>The dotted key; a key written absurdly long is shortened (it is quoted from the file).</summary>
    public string Key { get; init; } = Shorten(Key, MaxKey);

    /// <summary>What is wrong. A message quoting a huge value keeps its start and its end (the allowed values).</summary>
    public string Message { get; init; } = Shorten(Message, MaxMessage);

    private static string Shorten(string text, int max) =>
        text.Length <= max ? text : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{text[..(max / 2)]}... ({text.Length - max * 3 / 4:N0} characters left out) ...{text[^(max / 4)..]}");

    public override string ToString() => $"{File}:{Line}:{Column}: {Key}: {Message}";
}

/// <summary>
/// Every problem found in an experiment file, thrown together so a user fixes them in one pass
/// instead of one per run. Message lists each error on its own line.
/// </summary>
public sealed class SpecException : Exception
{
    public SpecException(IReadOnlyList<SpecError> errors)
        : base(string.Join("\n", errors.Select(e => e.ToString())))
    {
        if (errors.Count == 0) throw new ArgumentException("a SpecException needs at least one error", nameof(errors));
        Errors = errors;
    }

    public IReadOnlyList<SpecError> Errors { get; }
}

/// <summary>A place in a YAML file (1-based). Line 0 means "not from the file" (a value built in code).</summary>
public readonly record struct SourcePosition(int Line, int Column)
{
    public static readonly SourcePosition Unknown = new(0, 0);
    public static readonly SourcePosition FileStart = new(1, 1);
    public bool IsKnown => Line > 0;
}
