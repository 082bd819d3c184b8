namespace Training.Shared.Spec;

/// <summary>
/// The <c>stages:</c> section: named stages, each the file's keys with the stage's own keys put over them (and its own
/// sweep), run in an order where every stage comes after the stages in its <c>after:</c>. Stages are listed in that
/// order (file order where the graph leaves a choice).
/// </summary>
public sealed record StagesSpec(IReadOnlyList<StageSpec> Stages)
{
    public StageSpec this[string name] => Stages.Single(s => s.Name == name);

    /// <summary>Every stage <paramref name="name"/> waits for, directly or through another stage.</summary>
    public IReadOnlySet<string> Upstream(string name)
    {
        var seen = new HashSet<string>();
        var pending = new Stack<string>(this[name].After);
        while (pending.TryPop(out var next))
        {
            if (!seen.Add(next)) continue;
            foreach (var before in this[next].After) pending.Push(before);
        }
        return seen;
    }
}

/// <summary>One stage: its name, the stages it runs after, and its spec (with its sweep, if it has one; Name is the
/// experiment's). Trials of the stage are <c>EXPERIMENT-STAGE-t000</c>, ...</summary>
public sealed record StageSpec(string Name, IReadOnlyList<string> After, ExperimentSpec Spec, SourcePosition Position)
{
    public bool Equals(StageSpec? other) => other is not null && Name == other.Name && After.SequenceEqual(other.After) && Spec == other.Spec;
    public override int GetHashCode() => HashCode.Combine(Name, After.Count);
}

public enum StagePickKind { BestEval, Last, Index }

/// <summary>Which completed trial of a stage another stage starts from: the lowest final eval loss (best-eval), the
/// stage's last trial (last), or its trial at an index (0 = the stage's first trial).</summary>
public sealed record StagePick(StagePickKind Kind, int Index = 0)
{
    public const string BestEvalText = "best-eval";
    public const string LastText = "last";

    public static readonly StagePick BestEval = new(StagePickKind.BestEval);

    public override string ToString() => Kind switch
    {
        StagePickKind.BestEval => BestEvalText,
        StagePickKind.Last => LastText,
        _ => Index.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>best-eval, last or a trial index; null for anything else.</summary>
    public static StagePick? Parse(string text) => text switch
    {
        BestEvalText => BestEval,
        LastText => new StagePick(StagePickKind.Last),
        _ when int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index) => new StagePick(StagePickKind.Index, index),
        _ => null,
    };
}

/// <summary><c>model.init_from: {stage: NAME, pick: ...}</c>: weights from a trial of an earlier stage of the same
/// file, chosen when that stage has completed (or <c>distill.teacher: {...}</c>: the teacher from such a trial). Position
/// (where it was written) and Key are not part of equality.</summary>
public sealed record StageReference(string Stage, StagePick Pick)
{
    /// <summary>The key it was written at: model.init_from or distill.teacher.</summary>
    public string Key { get; init; } = "model.init_from";

    public SourcePosition Position { get; init; }
    public SourcePosition PickPosition { get; init; }

    public bool Equals(StageReference? other) => other is not null && Stage == other.Stage && Pick == other.Pick;
    public override int GetHashCode() => HashCode.Combine(Stage, Pick);

    public override string ToString() => $"stage {Stage}, pick {Pick}";
}
