namespace Training.Shared.Spec;

/// <summary>
/// Expands an experiment into its trials: the grid's cartesian product (first key varies slowest, in YAML
/// order) crossed with the random draws (drawn once from the experiment seed, so every grid point gets the
/// same draws). Each trial is re-validated with its overrides applied; a bad value or combination is reported
/// at the sweep entry that set it, all trials' errors in one <see cref="SpecException"/>.
/// </summary>
public static class SweepExpander
{
    /// <param name="flopsPerToken">Training FLOPs per token of a trial's spec, to size an equal-FLOPs sweep; the layer
    /// above Spec supplies it (TrialComponents.Expand), since it needs the model and the tokenizer.</param>
    public static IReadOnlyList<Trial> Expand(ExperimentSpec spec, Func<ExperimentSpec, double>? flopsPerToken = null) =>
        spec.Stages is { } stages ? ExpandStages(spec, stages, flopsPerToken) : Expand(spec, flopsPerToken, spec.Name);

    /// <summary>
    /// Every stage's trials, stage after stage in run order: trial ids are <c>NAME-STAGE-t000</c>, ... (numbered within
    /// the stage), indexes count through the whole file. A trial whose weights come from a stage carries the reference;
    /// its spec has no init_from until that stage has completed and the scheduler picks the trial.
    /// </summary>
    private static IReadOnlyList<Trial> ExpandStages(ExperimentSpec spec, StagesSpec stages, Func<ExperimentSpec, double>? flopsPerToken)
    {
        var trials = new List<Trial>();
        var errors = new List<SpecError>();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var stage in stages.Stages)
        {
            IReadOnlyList<Trial> expanded;
            try
            {
                expanded = Expand(stage.Spec, flopsPerToken, $"{spec.Name}-{stage.Name}");
            }
            catch (SpecException e)
            {
                errors.AddRange(e.Errors.Select(error => error with { Message = $"{error.Message} (stage {stage.Name})" }));
                continue;
            }
            counts[stage.Name] = expanded.Count;
            foreach (var trial in expanded)
            {
                var outOfRange = new[] { trial.Spec.InitFromStage, trial.Spec.TeacherFromStage }
                    .FirstOrDefault(r => r is { Pick.Kind: StagePickKind.Index } && counts.TryGetValue(r.Stage, out var n) && r.Pick.Index >= n);
                if (outOfRange is { } pick)
                {
                    var count = counts[pick.Stage];
                    errors.Add(new SpecError(spec.SourceFile, pick.PickPosition.Line, pick.PickPosition.Column, pick.Key + ".pick",
                        $"pick {pick.Pick.Index}: stage {pick.Stage} has {count} trial(s), indexes 0 to {count - 1} (stage {stage.Name})"));
                    break;
                }
                trials.Add(new Trial(trial.Id, trials.Count, trial.Spec with { InitFromStage = null, TeacherFromStage = null }, trial.Overrides)
                {
                    FlopsReference = trial.FlopsReference,
                    Stage = stage.Name,
                    InitFromStage = trial.Spec.InitFromStage,
                    TeacherFromStage = trial.Spec.TeacherFromStage,
                });
            }
        }
        if (errors.Count > 0) throw new SpecException(errors.Distinct().OrderBy(e => e.Line).ThenBy(e => e.Column).ToList());
        return trials;
    }

    /// <param name="idPrefix">Trial ids are idPrefix-t000, ...: the experiment's name, or NAME-STAGE in a stage.</param>
    private static IReadOnlyList<Trial> Expand(ExperimentSpec spec, Func<ExperimentSpec, double>? flopsPerToken, string idPrefix)
    {
        if (spec.Sweep is not { } sweep)
            return [new Trial(TrialId(idPrefix, 0), 0, spec, new Dictionary<string, string>())];

        var baseDocument = BaseDocument(spec, sweep);
        var gridPoints = GridPoints(sweep.Grid);
        var draws = sweep.Random is { } random ? Draws(random, spec.Seed) : [[]];

        var trials = new List<Trial>();
        var problems = new Dictionary<SpecError, List<string>>(); // one error, the trials that hit it
        void Report(ErrorList errors, string trialId)
        {
            foreach (var error in errors.Items)
            {
                if (!problems.TryGetValue(error, out var ids)) problems[error] = ids = [];
                ids.Add(trialId);
            }
        }

        foreach (var point in gridPoints)
        {
            foreach (var draw in draws)
            {
                var overrides = point.Concat(draw).ToList();
                if (sweep.EqualFlops is { } equalFlops)
                {
                    var measure = flopsPerToken ?? throw new InvalidOperationException(
                        "sweep.equal_flops needs a FLOPs measure: expand the experiment with TrialComponents.Expand");
                    trials.AddRange(EqualFlopsTrials(spec, idPrefix, baseDocument, overrides, equalFlops, trials.Count, measure, Report));
                    continue;
                }
                var index = trials.Count;
                var id = TrialId(idPrefix, index);
                var errors = new ErrorList(spec.SourceFile);
                var trialSpec = SpecBinder.Bind(Apply(baseDocument, overrides), spec.SourceFile, errors);
                Report(errors, id);
                trials.Add(new Trial(id, index, trialSpec ?? spec with { Sweep = null },
                    overrides.ToDictionary(o => o.Key, o => o.Value.Text)));
            }
        }

        if (problems.Count > 0)
        {
            throw new SpecException(problems
                .Select(p => p.Key with { Message = $"{p.Key.Message} (sweep {Describe(p.Value)})" })
                .OrderBy(e => e.Line).ThenBy(e => e.Column)
                .ToList());
        }
        return trials;
    }

    private static SourceDocument Apply(SourceDocument document, IEnumerable<(string Key, SweepValue Value)> overrides) =>
        document.WithOverrides(overrides.Select(o => (o.Key, new SourceScalar(o.Value.Text, false, o.Value.Position))));

    /// <summary>
    /// The reference (the file with the grid point, the draw and equal_flops.reference applied) and, per variant, the
    /// value of size_by whose training FLOPs per token come closest to the reference's. Every trial lists the keys the
    /// comparison sets, so the summary shows each model's shape side by side.
    /// </summary>
    private static IEnumerable<Trial> EqualFlopsTrials(ExperimentSpec spec, string idPrefix, SourceDocument baseDocument,
        List<(string Key, SweepValue Value)> common, SweepEqualFlops equalFlops, int firstIndex, Func<ExperimentSpec, double> flopsPerToken,
        Action<ErrorList, string> report)
    {
        var referenceOverrides = common.Concat(equalFlops.Reference.Select(s => (s.Key, s.Value))).ToList();
        var referenceId = TrialId(idPrefix, firstIndex);
        var errors = new ErrorList(spec.SourceFile);
        var reference = SpecBinder.Bind(Apply(baseDocument, referenceOverrides), spec.SourceFile, errors);
        report(errors, referenceId);
        var shownKeys = common.Select(o => o.Key).Concat(equalFlops.Keys).Distinct().ToList();
        if (reference is null)
        {
            // Nothing to size against; the reference's errors are reported, every trial of the group stands in as the file.
            for (var i = 0; i <= equalFlops.Variants.Count; i++)
                yield return new Trial(TrialId(idPrefix, firstIndex + i), firstIndex + i, spec with { Sweep = null }, new Dictionary<string, string>());
            yield break;
        }
        var referenceFlops = flopsPerToken(reference);
        yield return new Trial(referenceId, firstIndex, reference, Shown(reference, referenceOverrides, shownKeys)) { FlopsReference = reference };

        for (var v = 0; v < equalFlops.Variants.Count; v++)
        {
            var variant = equalFlops.Variants[v];
            var index = firstIndex + 1 + v;
            var id = TrialId(idPrefix, index);
            var overrides = referenceOverrides.Concat(variant.Settings.Select(s => (s.Key, s.Value))).ToList();
            var sized = SizeToFlops(spec, baseDocument, overrides, equalFlops.SizeBy, reference, referenceFlops, flopsPerToken, variant.Position);
            if (sized.Spec is null)
            {
                errors = new ErrorList(spec.SourceFile);
                errors.Add(variant.Position, $"sweep.equal_flops.variants[{v}]", sized.Problem!);
                report(errors, id);
                yield return new Trial(id, index, spec with { Sweep = null }, new Dictionary<string, string>());
                continue;
            }
            overrides.Add((equalFlops.SizeBy, new SweepValue(sized.Value!, variant.Position)));
            yield return new Trial(id, index, sized.Spec, Shown(sized.Spec, overrides, shownKeys)) { FlopsReference = reference };
        }
    }

    /// <summary>The candidates for size_by, smallest first: every layer count up to 4x the reference's (at least 64),
    /// or every multiple of 8 up to 4x the reference's d_model (at least 1024).</summary>
    private static IEnumerable<int> SizeCandidates(string sizeBy, ExperimentSpec reference) => sizeBy == SweepEqualFlops.LayersKey
        ? Enumerable.Range(1, Math.Max(64, 4 * reference.Model.Layers))
        : Enumerable.Range(1, Math.Max(128, reference.Model.DModel / 2)).Select(i => 8 * i);

    /// <summary>The valid value of size_by whose FLOPs per token are closest to the reference's (ratio nearest 1; ties to the smaller).</summary>
    private static (ExperimentSpec? Spec, string? Value, string? Problem) SizeToFlops(ExperimentSpec spec, SourceDocument baseDocument,
        List<(string Key, SweepValue Value)> overrides, string sizeBy, ExperimentSpec reference, double referenceFlops,
        Func<ExperimentSpec, double> flopsPerToken, SourcePosition position)
    {
        ExperimentSpec? best = null;
        string? bestValue = null;
        var bestDistance = double.PositiveInfinity;
        // Why the reference's own size fails for this variant is the most telling example when nothing fits.
        var referenceSize = sizeBy == SweepEqualFlops.LayersKey ? reference.Model.Layers : reference.Model.DModel;
        string? example = null;
        foreach (var candidate in SizeCandidates(sizeBy, reference))
        {
            var text = SpecText.Integer(candidate);
            var errors = new ErrorList(spec.SourceFile);
            var sized = SpecBinder.Bind(Apply(baseDocument, overrides.Append((sizeBy, new SweepValue(text, position)))), spec.SourceFile, errors);
            if (sized is null)
            {
                if (example is null || candidate == referenceSize)
                    example = $"{sizeBy} = {text}: {errors.Items[0].Key}: {errors.Items[0].Message}";
                continue;
            }
            var distance = Math.Abs(Math.Log(flopsPerToken(sized) / referenceFlops));
            if (distance < bestDistance)
                (best, bestValue, bestDistance) = (sized, text, distance);
        }
        return best is not null
            ? (best, bestValue, null)
            : (null, null, $"no value of {sizeBy} gives a valid model for this variant (for example {example})");
    }

    /// <summary>What a comparison trial shows per key: its own setting, else the value its spec resolved to.</summary>
    private static Dictionary<string, string> Shown(ExperimentSpec trialSpec, List<(string Key, SweepValue Value)> overrides, List<string> keys)
    {
        var resolved = SpecWriter.Flatten(trialSpec);
        var shown = new Dictionary<string, string>();
        foreach (var key in keys)
        {
            var set = overrides.LastOrDefault(o => o.Key == key);
            if (set.Key is not null) shown[key] = set.Value.Text;
            else if (resolved.Get(key) is ScalarValue { Scalar.Text: { } text }) shown[key] = text;
        }
        return shown;
    }

    public static string TrialId(string experimentName, int index) => $"{experimentName}-t{index:000}";

    private static string Describe(List<string> trialIds) =>
        trialIds.Count <= 3 ? "trial " + string.Join(", ", trialIds) : $"trials {trialIds[0]}, {trialIds[1]} and {trialIds.Count - 2} more";

    /// <summary>
    /// Overrides apply to the file as written, so defaults derived from a swept key follow it. When the spec
    /// was changed in code after loading (its base no longer reproduces it), they apply to its resolved values.
    /// </summary>
    internal static SourceDocument BaseDocument(ExperimentSpec spec, SweepSpec sweep)
    {
        if (sweep.Base is { } written)
        {
            var rebound = SpecBinder.Bind(written, spec.SourceFile, new ErrorList(spec.SourceFile));
            if (rebound is not null && rebound == spec with { Sweep = null }) return written;
        }
        return SpecWriter.Flatten(spec);
    }

    private static List<List<(string Key, SweepValue Value)>> GridPoints(IReadOnlyList<SweepAxis> grid)
    {
        var points = new List<List<(string, SweepValue)>> { new() };
        foreach (var axis in grid)
        {
            points = points
                .SelectMany(point => axis.Values.Select(value => point.Append((axis.Key, value)).ToList()))
                .ToList();
        }
        return points;
    }

    /// <summary>Samples draws, each a value per parameter in YAML order, from a generator seeded by the experiment seed.
    /// Real values are rounded to 4 significant digits so the override text is exactly the value used.</summary>
    private static List<List<(string Key, SweepValue Value)>> Draws(SweepRandom random, long seed)
    {
        var generator = new SplitMix64(seed);
        var draws = new List<List<(string, SweepValue)>>();
        for (var sample = 0; sample < random.Samples; sample++)
        {
            var draw = new List<(string, SweepValue)>();
            foreach (var param in random.Params)
            {
                var u = generator.NextUnit();
                var text = param.Distribution switch
                {
                    SweepDistribution.Uniform => SpecText.Number(FourDigits(param.Low + u * (param.High - param.Low))),
                    SweepDistribution.LogUniform => SpecText.Number(FourDigits(Math.Exp(
                        Math.Log(param.Low) + u * (Math.Log(param.High) - Math.Log(param.Low))))),
                    SweepDistribution.IntUniform => SpecText.Integer(
                        (long)param.Low + (long)Math.Floor(u * ((long)param.High - (long)param.Low + 1))),
                    _ => param.Choices[(int)Math.Floor(u * param.Choices.Count)].Text,
                };
                draw.Add((param.Key, new SweepValue(text, param.Position)));
            }
            draws.Add(draw);
        }
        return draws;
    }

    private static double FourDigits(double value) =>
        double.Parse(value.ToString("G4", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>SplitMix64: tiny, stable across .NET versions (System.Random's seeded sequence is not promised to be).</summary>
    private sealed class SplitMix64(long seed)
    {
        private ulong state = (ulong)seed ^ 0x5EED5EED5EED5EEDUL;

        public double NextUnit() => (Next() >> 11) * (1.0 / (1UL << 53));

        private ulong Next()
        {
            var z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
