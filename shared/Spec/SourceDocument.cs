namespace Training.Shared.Spec;

/// <summary>One scalar as written. Text is null for a YAML null (`key:` with nothing, ~, null).
/// A quoted scalar is a string, never a number.</summary>
internal sealed record SourceScalar(string? Text, bool IsQuoted, SourcePosition Position);

/// <summary>The value written for one schema key: a scalar, a list, or a mapping (always wrong for a leaf key).</summary>
internal abstract record SourceValue(SourcePosition Position);

internal sealed record ScalarValue(SourceScalar Scalar) : SourceValue(Scalar.Position);

internal sealed record ListValue(IReadOnlyList<SourceValue> Items, SourcePosition Position) : SourceValue(Position);

internal sealed record MappingValue(SourcePosition Position) : SourceValue(Position)
{
    /// <summary>The mapping's entries as written (plain keys only), for the one key that takes a mapping:
    /// <c>model.init_from: {stage: ..., pick: ...}</c>.</summary>
    public IReadOnlyList<(string Key, SourcePosition KeyPosition, SourceValue Value)> Entries { get; init; } = [];
}

/// <summary>
/// An experiment file flattened to dotted key -> value as written, with positions. The binder reads it;
/// a sweep trial is this document with some values replaced by sweep entries (which keep the sweep's positions).
/// </summary>
internal sealed class SourceDocument
{
    private readonly Dictionary<string, SourceValue> values = new();
    private readonly Dictionary<string, SourcePosition> sections = new();
    private readonly HashSet<string> swept = new();

    /// <summary>The document is one stage of a file with <c>stages:</c> (so init_from may name a stage).</summary>
    public bool InStage { get; private set; }

    /// <summary>The document is a trial's stored spec.yaml, written before its stage sources were resolved: a
    /// distill.teacher that comes from a stage is filled in when the stage has completed, so it may be missing here.</summary>
    public bool StoredTrial { get; private set; }

    public SourceDocument AsStoredTrial()
    {
        var copy = WithOverrides([]);
        copy.StoredTrial = true;
        return copy;
    }

    public SourceValue? Get(string key) => values.GetValueOrDefault(key);

    public bool Has(string key) => values.ContainsKey(key);

    /// <summary>True when the key's value came from a sweep entry (errors about it point at the sweep).</summary>
    public bool IsSwept(string key) => swept.Contains(key);

    /// <summary>Where to report a problem with a key: its value, else its section's key, else the file start.</summary>
    public SourcePosition PositionOf(string key)
    {
        if (values.TryGetValue(key, out var value) && value.Position.IsKnown) return value.Position;
        var section = key.Contains('.') ? key[..key.IndexOf('.')] : "";
        return sections.TryGetValue(section, out var position) && position.IsKnown ? position : SourcePosition.FileStart;
    }

    /// <summary>Written keys in schema order.</summary>
    public IEnumerable<(string Key, SourceValue Value)> Entries =>
        SpecSchema.All.Where(k => values.ContainsKey(k.Path)).Select(k => (k.Path, values[k.Path]));

    public void Set(string key, SourceValue value) => values[key] = value;

    public void SetSection(string section, SourcePosition position) => sections[section] = position;

    /// <summary>
    /// A copy in which <paramref name="keys"/> count as swept: the file as written, bound as the base of a sweep that
    /// varies these keys (a key that fits only some architectures is then no error when model.arch is among them).
    /// </summary>
    public SourceDocument WithSweptKeys(IEnumerable<string> keys)
    {
        var copy = WithOverrides([]);
        foreach (var key in keys) copy.swept.Add(key);
        return copy;
    }

    /// <summary>A stage: this document (the file's keys) with the stage's own keys put over it, at their own positions.</summary>
    public SourceDocument ForStage(SourceDocument stage)
    {
        var copy = WithOverrides([]);
        foreach (var (key, value) in stage.values) copy.values[key] = value;
        foreach (var (section, position) in stage.sections) copy.sections.TryAdd(section, position);
        copy.InStage = true;
        return copy;
    }

    public SourceDocument WithOverrides(IEnumerable<(string Key, SourceScalar Value)> overrides)
    {
        var copy = new SourceDocument { InStage = InStage, StoredTrial = StoredTrial };
        foreach (var (key, value) in values) copy.values[key] = value;
        foreach (var (section, position) in sections) copy.sections[section] = position;
        foreach (var (key, value) in overrides)
        {
            copy.values[key] = new ScalarValue(value);
            copy.swept.Add(key);
        }
        return copy;
    }
}

/// <summary>Collects errors for one file; every error names the file, place and dotted key.</summary>
internal sealed class ErrorList(string file)
{
    public List<SpecError> Items { get; } = [];

    public int Count => Items.Count;

    public void Add(SourcePosition at, string key, string message) =>
        Items.Add(new SpecError(file, at.Line, at.Column, key, message));

    /// <summary>Throws one SpecException with every error, in file order.</summary>
    public void ThrowIfAny()
    {
        if (Items.Count > 0)
            throw new SpecException(Items.OrderBy(e => e.Line).ThenBy(e => e.Column).ToList());
    }
}
