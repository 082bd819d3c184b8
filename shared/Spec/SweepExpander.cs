namespace Training.Shared.Spec;

/// <summary>
/// Expands an experiment into its trials: the grid's cartesian product (first key varies slowest, in YAML
/// order) crossed with the random draws (drawn once from the experiment seed, so every grid point gets the
/// same draws). Each trial is re-validated with its overrides applied; a bad value or combination is reported
/// at the sweep entry that set it, all trials' errors in one <see cref="SpecException"/>.
/// </summary>
public static class SweepExpander
{
    public static IReadOnlyList<Trial> Expand(ExperimentSpec spec)
    {
        if (spec.Sweep is not { } sweep)
            return [new Trial(TrialId(spec.Name, 0), 0, spec, new Dictionary<string, string>())];

        var baseDocument = BaseDocument(spec, sweep);
        var gridPoints = GridPoints(sweep.Grid);
        var draws = sweep.Random is { } random ? Draws(random, spec.Seed) : [[]];

        var trials = new List<Trial>();
        var problems = new Dictionary<SpecError, List<string>>(); // one error, the trials that hit it
        foreach (var point in gridPoints)
        {
            foreach (var draw in draws)
            {
                var index = trials.Count;
                var id = TrialId(spec.Name, index);
                var overrides = point.Concat(draw).ToList();
                var errors = new ErrorList(spec.SourceFile);
                var document = baseDocument.WithOverrides(
                    overrides.Select(o => (o.Key, new SourceScalar(o.Value.Text, false, o.Value.Position))));
                var trialSpec = SpecBinder.Bind(document, spec.SourceFile, errors);
                foreach (var error in errors.Items)
                {
                    if (!problems.TryGetValue(error, out var ids)) problems[error] = ids = [];
                    ids.Add(id);
                }
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
