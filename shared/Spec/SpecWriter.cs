using Training.Shared.Models;
using Training.Shared.Objectives;
using System.Text;

namespace Training.Shared.Spec;

/// <summary>
/// Writes a spec back as YAML (saved with each run and checkpoint). ExperimentLoader.Parse(ToYaml(spec),
/// spec.SourceFile) gives an equal spec. Without a sweep every value is written resolved; with a sweep the
/// keys are written as the user wrote them, so re-expanding the written file gives the same trials.
/// Data paths are always written absolute, so the file can be read from anywhere.
/// </summary>
public static class SpecWriter
{
    /// <summary>The YAML spelling of an architecture (encoder-decoder, lc-gpt, ...).</summary>
    public static string NameOf(ModelArchitecture arch) => SpecSchema.Architectures.NameOf(arch);

    /// <summary>The YAML spelling of an objective (span-corruption, clm, mlm).</summary>
    public static string NameOf(ObjectiveKind kind) => SpecSchema.Objectives.NameOf(kind);

    public static string ToYaml(ExperimentSpec spec)
    {
        var document = spec.Sweep is { } sweep ? SweepExpander.BaseDocument(spec, sweep) : Flatten(spec);
        var yaml = new StringBuilder();
        yaml.AppendLine(spec.Sweep is null
            ? "# Resolved experiment spec: every default filled in."
            : "# Experiment spec as written; keys left out take their defaults, re-derived for each trial.");

        var scalars = document.Entries
            .Where(e => e.Value is ScalarValue)
            .Select(e => (Key: SpecSchema.Find(e.Key)!, ((ScalarValue)e.Value).Scalar))
            .ToList();
        foreach (var (key, scalar) in scalars.Where(s => s.Key.Section == ""))
            yaml.AppendLine($"{key.Path}: {Scalar(scalar)}");

        yaml.AppendLine("data:");
        WritePaths(yaml, "train", spec.Data.Train);
        WritePaths(yaml, "eval", spec.Data.Eval);

        foreach (var section in SpecSchema.Sections.Where(s => s != "data"))
        {
            var inSection = scalars.Where(s => s.Key.Section == section).ToList();
            if (inSection.Count == 0) continue;
            yaml.AppendLine(section + ":");
            foreach (var (key, scalar) in inSection) yaml.AppendLine($"  {key.Leaf}: {Scalar(scalar)}");
        }
        if (spec.Sweep is { } written) WriteSweep(yaml, written);
        return yaml.ToString().ReplaceLineEndings("\n"); // the same bytes on every OS
    }

    private static void WritePaths(StringBuilder yaml, string key, IReadOnlyList<string> paths)
    {
        if (paths.Count == 0)
        {
            yaml.AppendLine($"  {key}: []");
            return;
        }
        yaml.AppendLine($"  {key}:");
        foreach (var path in paths) yaml.AppendLine($"    - {SpecText.Quote(path)}");
    }

    private static void WriteSweep(StringBuilder yaml, SweepSpec sweep)
    {
        yaml.AppendLine("sweep:");
        if (sweep.Grid.Count > 0)
        {
            yaml.AppendLine("  grid:");
            foreach (var axis in sweep.Grid)
                yaml.AppendLine($"    {axis.Key}: [{string.Join(", ", axis.Values.Select(v => SweepText(axis.Key, v.Text)))}]");
        }
        if (sweep.Random is { } random)
        {
            yaml.AppendLine("  random:");
            yaml.AppendLine($"    samples: {random.Samples}");
            yaml.AppendLine("    params:");
            foreach (var param in random.Params)
            {
                var argument = param.Distribution switch
                {
                    SweepDistribution.Uniform => $"uniform: [{SpecText.Number(param.Low)}, {SpecText.Number(param.High)}]",
                    SweepDistribution.LogUniform => $"log_uniform: [{SpecText.Number(param.Low)}, {SpecText.Number(param.High)}]",
                    SweepDistribution.IntUniform => $"int_uniform: [{SpecText.Integer((long)param.Low)}, {SpecText.Integer((long)param.High)}]",
                    _ => $"choice: [{string.Join(", ", param.Choices.Select(v => SweepText(param.Key, v.Text)))}]",
                };
                yaml.AppendLine($"      {param.Key}: {{{argument}}}");
            }
        }
        if (sweep.EqualFlops is { } equalFlops)
        {
            string Settings(IEnumerable<SweepSetting> settings) =>
                "{" + string.Join(", ", settings.Select(s => $"{s.Key}: {SweepText(s.Key, s.Value.Text)}")) + "}";
            yaml.AppendLine("  equal_flops:");
            yaml.AppendLine($"    size_by: {equalFlops.SizeBy}");
            if (equalFlops.Reference.Count > 0) yaml.AppendLine($"    reference: {Settings(equalFlops.Reference)}");
            yaml.AppendLine("    variants:");
            foreach (var variant in equalFlops.Variants) yaml.AppendLine($"      - {Settings(variant.Settings)}");
        }
    }

    // Numbers as written; names quoted unless plainly safe (a flow list would misread some characters).
    private static string SweepText(string key, string text) =>
        SpecSchema.Find(key)!.Rule is IntegerRule or NumberRule ? text : SpecText.String(text);

    private static string Scalar(SourceScalar scalar) =>
        scalar.IsQuoted ? SpecText.Quote(scalar.Text ?? "") : scalar.Text ?? "null";

    /// <summary>The resolved spec as a flat document: every key the spec uses, written by its schema entry (the sweep is not included).</summary>
    internal static SourceDocument Flatten(ExperimentSpec spec)
    {
        var document = new SourceDocument();
        foreach (var key in SpecSchema.All)
        {
            if (key.Rule is PathListRule)
            {
                var paths = key.Path == "data.train" ? spec.Data.Train : spec.Data.Eval;
                document.Set(key.Path, new ListValue(
                    paths.Select(p => (SourceValue)new ScalarValue(new SourceScalar(p, true, SourcePosition.Unknown))).ToList(),
                    SourcePosition.Unknown));
                continue;
            }
            if (key.Get(spec) is not { } value) continue;
            var text = key.Rule.Format(value);
            // Names are quoted unless plainly safe; numbers never are.
            var quoted = key.Rule is not (IntegerRule or NumberRule) && !SpecText.IsSafePlain(text);
            document.Set(key.Path, new ScalarValue(new SourceScalar(text, quoted, SourcePosition.Unknown)));
        }
        return document;
    }
}
