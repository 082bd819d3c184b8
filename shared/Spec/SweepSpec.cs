namespace Training.Shared.Spec;

/// <summary>
/// The sweep section: a grid (cartesian product, in YAML key order) crossed with random draws, and optionally with
/// an equal-FLOP comparison (a reference model and variants sized to its training FLOPs per token).
/// Positions say where each entry was written so a value that fails validation in a trial is
/// reported at its sweep line; they are not part of equality (a spec written back and re-read is equal).
/// </summary>
public sealed record SweepSpec(IReadOnlyList<SweepAxis> Grid, SweepRandom? Random, SweepEqualFlops? EqualFlops = null)
{
    /// <summary>
    /// The rest of the file as written (without sweep). Trials apply overrides to it, so keys left to
    /// their defaults are re-derived per trial (ffn_dim = 4*d_model, kv_heads = heads, the layer split).
    /// </summary>
    internal SourceDocument? Base { get; init; }

    /// <summary>Every dotted key the sweep varies.</summary>
    public IEnumerable<string> Keys => Grid.Select(axis => axis.Key)
        .Concat(Random?.Params.Select(p => p.Key) ?? [])
        .Concat(EqualFlops?.Keys ?? [])
        .Distinct();

    public bool Equals(SweepSpec? other) =>
        other is not null && Grid.SequenceEqual(other.Grid) && Equals(Random, other.Random) && Equals(EqualFlops, other.EqualFlops);

    public override int GetHashCode() => HashCode.Combine(Grid.Count, Random);
}

/// <summary>One grid key with its values as written (text, e.g. "1.0e-3").</summary>
public sealed record SweepAxis(string Key, IReadOnlyList<SweepValue> Values, SourcePosition Position)
{
    public bool Equals(SweepAxis? other) =>
        other is not null && Key == other.Key && Values.SequenceEqual(other.Values);

    public override int GetHashCode() => HashCode.Combine(Key, Values.Count);
}

public sealed record SweepValue(string Text, SourcePosition Position)
{
    public bool Equals(SweepValue? other) => other is not null && Text == other.Text;
    public override int GetHashCode() => Text.GetHashCode();
}

/// <summary>Samples draws (seeded by the experiment seed), each a value for every parameter.</summary>
public sealed record SweepRandom(int Samples, IReadOnlyList<SweepParam> Params)
{
    public bool Equals(SweepRandom? other) =>
        other is not null && Samples == other.Samples && Params.SequenceEqual(other.Params);

    public override int GetHashCode() => HashCode.Combine(Samples, Params.Count);
}

public enum SweepDistribution { Uniform, LogUniform, IntUniform, Choice }

/// <summary>
/// One random parameter. Low/High bound uniform, log_uniform and int_uniform (inclusive for int_uniform);
/// Choices holds the values of a choice (empty otherwise).
/// </summary>
public sealed record SweepParam(
    string Key,
    SweepDistribution Distribution,
    double Low,
    double High,
    IReadOnlyList<SweepValue> Choices,
    SourcePosition Position)
{
    public bool Equals(SweepParam? other) =>
        other is not null && Key == other.Key && Distribution == other.Distribution
        && Low.Equals(other.Low) && High.Equals(other.High) && Choices.SequenceEqual(other.Choices);

    public override int GetHashCode() => HashCode.Combine(Key, Distribution, Low, High);
}

/// <summary>One dotted key and the value an equal-FLOP reference or variant gives it.</summary>
public sealed record SweepSetting(string Key, SweepValue Value);

/// <summary>One variant of an equal-FLOP comparison: its settings, and where it was written.</summary>
public sealed record SweepVariant(IReadOnlyList<SweepSetting> Settings, SourcePosition Position)
{
    public bool Equals(SweepVariant? other) => other is not null && Settings.SequenceEqual(other.Settings);
    public override int GetHashCode() => Settings.Count;
}

/// <summary>
/// An equal-FLOP comparison: the reference model is the file (with <see cref="Reference"/>'s settings, if any);
/// each variant applies its settings to the reference and then takes the value of <see cref="SizeBy"/>
/// (model.layers or model.d_model) whose training FLOPs per token come closest to the reference's. The reference
/// runs as a trial too, before its variants.
/// </summary>
public sealed record SweepEqualFlops(string SizeBy, IReadOnlyList<SweepSetting> Reference, IReadOnlyList<SweepVariant> Variants, SourcePosition Position)
{
    public const string LayersKey = "model.layers";
    public const string DModelKey = "model.d_model";
    public static IReadOnlyList<string> SizeKeys { get; } = [LayersKey, DModelKey];

    /// <summary>Every key the comparison sets, the size key included.</summary>
    public IEnumerable<string> Keys =>
        Reference.Select(s => s.Key).Concat(Variants.SelectMany(v => v.Settings.Select(s => s.Key))).Append(SizeBy).Distinct();

    public bool Equals(SweepEqualFlops? other) =>
        other is not null && SizeBy == other.SizeBy && Reference.SequenceEqual(other.Reference) && Variants.SequenceEqual(other.Variants);

    public override int GetHashCode() => HashCode.Combine(SizeBy, Reference.Count, Variants.Count);
}

/// <summary>
/// One run of the experiment: Spec has the sweep's overrides applied (Sweep = null, Seed unchanged).
/// Overrides maps dotted key -> value text, for summary tables. In an equal-FLOP comparison every trial lists the
/// keys the comparison sets (the chosen size included), with the value it resolved to where it set none, and
/// <see cref="FlopsReference"/> is the reference it was sized against (the reference trial's own spec for itself).
/// </summary>
public sealed record Trial(string Id, int Index, ExperimentSpec Spec, IReadOnlyDictionary<string, string> Overrides)
{
    public ExperimentSpec? FlopsReference { get; init; }

    /// <summary>The stage this trial belongs to; null in a file without stages.</summary>
    public string? Stage { get; init; }

    /// <summary>The earlier stage whose trial gives this trial its weights (picked when that stage has completed).</summary>
    public StageReference? InitFromStage { get; init; }

    /// <summary>The earlier stage whose trial is this distillation trial's teacher (picked like <see cref="InitFromStage"/>).</summary>
    public StageReference? TeacherFromStage { get; init; }
}
