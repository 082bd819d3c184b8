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
    public static string NameOf(ModelArch arch) => SpecNames.Of(SpecNames.Arches, arch);

    /// <summary>The YAML spelling of an objective (span-corruption, clm, mlm).</summary>
    public static string NameOf(ObjectiveKind kind) => SpecNames.Of(SpecNames.Objectives, kind);

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

    /// <summary>The resolved spec as a flat document: every key written explicitly (the sweep is not included).</summary>
    internal static SourceDocument Flatten(ExperimentSpec spec)
    {
        var document = new SourceDocument();
        void Plain(string key, string text) =>
            document.Set(key, new ScalarValue(new SourceScalar(text, false, SourcePosition.Unknown)));
        void Text(string key, string text) =>
            document.Set(key, new ScalarValue(new SourceScalar(text, !SpecText.IsSafePlain(text), SourcePosition.Unknown)));
        void Number(string key, double value) => Plain(key, SpecText.Number(value));
        void Integer(string key, long value) => Plain(key, SpecText.Integer(value));
        void Paths(string key, IReadOnlyList<string> paths) =>
            document.Set(key, new ListValue(
                paths.Select(p => (SourceValue)new ScalarValue(new SourceScalar(p, true, SourcePosition.Unknown))).ToList(),
                SourcePosition.Unknown));

        Text("name", spec.Name);
        Integer("seed", spec.Seed);
        Paths("data.train", spec.Data.Train);
        Paths("data.eval", spec.Data.Eval);

        Text("tokenizer.kind", SpecNames.Of(SpecNames.Tokenizers, spec.Tokenizer.Kind));
        Integer("tokenizer.sentinels", spec.Tokenizer.Sentinels);

        var model = spec.Model;
        Text("model.arch", SpecNames.Of(SpecNames.Arches, model.Arch));
        if (model.Preset is { } preset) Text("model.preset", preset);
        Integer("model.d_model", model.DModel);
        Integer("model.layers", model.Layers);
        if (model.Arch == ModelArch.EncoderDecoder)
        {
            Integer("model.encoder_layers", model.EncoderLayers);
            Integer("model.decoder_layers", model.DecoderLayers);
            if (model.EncoderFraction is { } fraction) Number("model.encoder_fraction", fraction);
        }
        Integer("model.heads", model.Heads);
        Integer("model.kv_heads", model.KvHeads);
        Integer("model.head_dim", model.HeadDim);
        Integer("model.ffn_dim", model.FfnDim);
        Text("model.mlp", SpecNames.Of(SpecNames.Mlps, model.Mlp));
        Number("model.dropout", model.Dropout);
        Number("model.rope_theta", model.RopeTheta);
        Number("model.norm_eps", model.NormEps);
        if (model.IsGptFamily)
        {
            Text("model.norm_position", SpecNames.Of(SpecNames.NormPositions, model.NormPosition));
            Integer("model.max_positions", model.MaxPositions);
        }
        if (model.Arch is ModelArch.LinearlyCompressedGpt or ModelArch.ConvCompressedGpt)
            Integer("model.compression_stages", model.CompressionStages);
        if (model.Arch == ModelArch.ParallelGpt)
            Text("model.branches_at_inference", SpecNames.Of(SpecNames.Branches, model.Branches));
        if (model.IsEttin)
        {
            Integer("model.global_every", model.GlobalEvery);
            Integer("model.local_window", model.LocalWindow);
            Number("model.global_rope_theta", model.GlobalRopeTheta);
        }

        Text("objective.kind", SpecNames.Of(SpecNames.Objectives, spec.Objective.Kind));
        Integer("objective.input_length", spec.Objective.InputLength);
        Number("objective.noise_density", spec.Objective.NoiseDensity);
        Number("objective.mean_span_length", spec.Objective.MeanSpanLength);
        Number("objective.mask_rate", spec.Objective.MaskRate);
        Number("objective.eval_mask_rate", spec.Objective.EvalMaskRate);

        var optimizer = spec.Optimizer;
        Text("optimizer.kind", SpecNames.Of(SpecNames.Optimizers, optimizer.Kind));
        Number("optimizer.lr", optimizer.Lr);
        Number("optimizer.beta1", optimizer.Beta1);
        Number("optimizer.beta2", optimizer.Beta2);
        Number("optimizer.eps", optimizer.Eps);
        Number("optimizer.weight_decay", optimizer.WeightDecay);
        Number("optimizer.grad_clip", optimizer.GradClip);

        Text("schedule.kind", SpecNames.Of(SpecNames.Schedules, spec.Schedule.Kind));
        Integer("schedule.warmup_steps", spec.Schedule.WarmupSteps);
        Number("schedule.min_lr_ratio", spec.Schedule.MinLrRatio);
        Number("schedule.decay_fraction", spec.Schedule.DecayFraction);

        var train = spec.Train;
        Integer("train.steps", train.Steps);
        Integer("train.global_batch", train.GlobalBatch);
        Integer("train.micro_batch", train.MicroBatch);
        Integer("train.eval_every", train.EvalEvery);
        Integer("train.eval_batches", train.EvalBatches);
        Integer("train.checkpoint_every", train.CheckpointEvery);
        Integer("train.keep_checkpoints", train.KeepCheckpoints);
        Integer("train.log_every", train.LogEvery);

        Integer("resources.workers", spec.Resources.Workers);
        if (spec.Resources.MinWorkers is { } minWorkers) Integer("resources.min_workers", minWorkers);
        Integer("resources.threads", spec.Resources.Threads);
        Text("resources.device", spec.Resources.Device);
        Integer("resources.max_concurrent_trials", spec.Resources.MaxConcurrentTrials);
        return document;
    }
}
