using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Objectives;

namespace Training.Shared.Spec;

/// <summary>
/// One key of the experiment schema: its dotted path, what it accepts, its default, and how it reads from and writes
/// into the typed spec, so the binder and the writer never list keys by hand.
/// </summary>
/// <param name="Default">long, double or string as written in YAML; null when the key is required or its default is
/// derived from other keys (SpecBinder.DeriveModelDefaults and the layer split).</param>
internal sealed record SchemaKey(string Path, ValueRule Rule, object? Default = null, bool Required = false)
{
    public string Section => Path.Contains('.') ? Path[..Path.IndexOf('.')] : "";
    public string Leaf => Path.Contains('.') ? Path[(Path.IndexOf('.') + 1)..] : Path;

    /// <summary>The name identifies the experiment and data lists are not scalars: everything else can be swept (a seed
    /// sweep gives replicates of one configuration).</summary>
    public bool Sweepable => Rule is not PathListRule && Path is not "name";

    /// <summary>The key's value in a resolved spec, to write; null where the spec does not use it (an unset optional,
    /// a key of another architecture).</summary>
    public Func<ExperimentSpec, object?> Get { get; init; } = _ => null;

    /// <summary>Puts a converted value into the spec; null for keys the binder resolves together (data, the layer split,
    /// objective.kind's auto).</summary>
    public Func<ExperimentSpec, object, ExperimentSpec>? Set { get; init; }

    /// <summary>Model keys that shape some architectures only: which ones, and how an error names them.</summary>
    public Func<ModelArchitecture, bool>? AppliesTo { get; init; }
    public string? Family { get; init; }

    /// <summary>With <see cref="Family"/>: only this written value is an error elsewhere (norm_position: pre is what every other block does).</summary>
    public string? OnlyWhen { get; init; }

    /// <summary>The <see cref="TransformerConfig"/> property this key sets, so shape problems are reported at the key.</summary>
    public string? Field { get; init; }

    /// <summary>The default as a typed value (an enum for choices), or null.</summary>
    public object? TypedDefault => Default is null ? null : Rule.FromDefault(Default);
}

/// <summary>
/// The one table of every key an experiment file may contain. The YAML reader rejects keys not listed here,
/// the binder reads values through these rules into the spec, the sweep checks its keys against it and the writer
/// emits keys in this order. docs/experiment-yaml.md documents each entry (a test checks that). Adding a setting:
/// one entry here, the record field it fills, the code that uses it, a test and the docs.
/// </summary>
public static partial class SpecSchema
{
    internal const string SweepSection = "sweep";
    internal const string StagesSection = "stages";

    internal static readonly IReadOnlyList<string> Sections =
        ["data", "tokenizer", "model", "objective", "distill", "optimizer", "schedule", "train", "resources"];

    // Shape limits: far above what a small-model cluster trains, low enough that no count overflows.
    private const int MaxWidth = 65_536;
    private const int MaxLayers = 1_024;
    private const int MaxHeads = 1_024;
    private const int MaxLength = 1 << 20;

    private const string EttinArches = "encoder-only and ettin-decoder";
    private const string GptArches = "the GPT family (gpt, parallel-gpt, lc-gpt, cc-gpt)";

    internal static readonly ChoiceRule Architectures = ChoiceRule.Of(
        ("encoder-decoder", ModelArchitecture.EncoderDecoder), ("decoder-only", ModelArchitecture.DecoderOnly),
        ("gpt", ModelArchitecture.Gpt), ("parallel-gpt", ModelArchitecture.ParallelGpt),
        ("lc-gpt", ModelArchitecture.LinearlyCompressedGpt), ("cc-gpt", ModelArchitecture.ConvCompressedGpt),
        ("encoder-only", ModelArchitecture.EncoderOnly), ("ettin-decoder", ModelArchitecture.EttinDecoder));

    /// <summary>objective.kind: "auto" stays a string, the binder resolves it from model.arch.</summary>
    internal const string AutoObjective = "auto";
    internal static readonly ChoiceRule Objectives = ChoiceRule.Of(
        ("span-corruption", (object)ObjectiveKind.SpanCorruption), ("clm", ObjectiveKind.Clm), ("mlm", ObjectiveKind.Mlm),
        ("seq2seq", ObjectiveKind.Seq2Seq), ("distill", ObjectiveKind.Distill), (AutoObjective, AutoObjective));

    internal static readonly IReadOnlyList<SchemaKey> All =
    [
        Top("name", new PatternRule(NamePattern(), "a name matching [a-z0-9][a-z0-9-_]* (lowercase letters, digits, - and _)"), null,
            s => s.Name, (s, v) => s with { Name = v }, required: true),
        Top("seed", new IntegerRule(long.MinValue, long.MaxValue), 0L, s => s.Seed, (s, v) => s with { Seed = v }),

        new("data.train", new PathListRule(), Required: true),
        new("data.eval", new PathListRule()),

        Tokenizer("kind", ChoiceRule.Of(("byte", TokenizerKind.Byte), ("cl100k", TokenizerKind.Cl100k), ("char", TokenizerKind.Char),
                ("sentencepiece", TokenizerKind.SentencePiece), ("bpe", TokenizerKind.Bpe)), "byte",
            t => t.Kind, (t, v) => t with { Kind = v }),
        Tokenizer("path", new PatternRule(new System.Text.RegularExpressions.Regex(@"^[^\r\n]+$"), "the SentencePiece .model file, or the folder of a BPE tokenizer's vocab.json and merges.txt (relative to this file)"),
            null, t => t.Path, (t, v) => t with { Path = v }),
        Tokenizer("pad_vocab_to", new IntegerRule(1, 65_536), 1L, t => t.PadVocabTo, (t, v) => t with { PadVocabTo = v }),
        Tokenizer("sentinels", new IntegerRule(0, 1000), 100L, t => t.Sentinels, (t, v) => t with { Sentinels = v }),

        Model("arch", Architectures, null, m => m.Architecture, (m, v) => m with { Architecture = v }, required: true),
        Model("d_model", IntegerRule.AtLeast(1, MaxWidth), 256L, m => m.DModel, (m, v) => m with { DModel = v }),
        Split("layers", m => m.Layers),
        Split("encoder_layers", m => m.Architecture == ModelArchitecture.EncoderDecoder ? m.EncoderLayers : null),
        Split("decoder_layers", m => m.Architecture == ModelArchitecture.EncoderDecoder ? m.DecoderLayers : null),
        new("model.encoder_fraction", NumberRule.Between(0, false, 1, false))
            { Get = s => s.Model.Architecture == ModelArchitecture.EncoderDecoder ? s.Model.EncoderFraction : null },
        Model("heads", IntegerRule.AtLeast(1, MaxHeads), 4L, m => m.Heads, (m, v) => m with { Heads = v }),
        Model("kv_heads", IntegerRule.AtLeast(1, MaxHeads), null, m => m.KvHeads, (m, v) => m with { KvHeads = v }),
        Model("head_dim", IntegerRule.AtLeast(2, 4_096), 64L, m => m.HeadDim, (m, v) => m with { HeadDim = v }),
        Model("ffn_dim", IntegerRule.AtLeast(1, MaxLength), null, m => m.FfnDim, (m, v) => m with { FfnDim = v }),
        Model("mlp", ChoiceRule.Of(("gelu", MlpKind.GeluTanh), ("swiglu", MlpKind.SwiGlu), ("geglu", MlpKind.GeGlu)), null,
            m => m.Mlp, (m, v) => m with { Mlp = v }),
        Model("dropout", NumberRule.Between(0, true, 1, false), null, m => m.Dropout, (m, v) => m with { Dropout = v }),
        Model("rope_theta", NumberRule.Positive, 10000.0, m => m.RopeTheta, (m, v) => m with { RopeTheta = v }),
        Model("norm_eps", NumberRule.Positive, null, m => m.NormEps, (m, v) => m with { NormEps = v }),
        Model("norm_position", ChoiceRule.Of(("pre", NormPosition.Pre), ("post", NormPosition.Post)), "pre",
            m => m.NormPosition, (m, v) => m with { NormPosition = v }, ModelFamilies.IsGptFamily, GptArches, onlyWhen: "post"),
        Model("max_positions", IntegerRule.AtLeast(1, MaxLength), null, m => m.MaxPositions, (m, v) => m with { MaxPositions = v },
            ModelFamilies.IsGptFamily, "the GPT family, which learns position embeddings"),
        Model("compression_stages", new IntegerRule(1, 8), 2L, m => m.CompressionStages, (m, v) => m with { CompressionStages = v },
            ModelFamilies.IsCompressedGpt, "lc-gpt and cc-gpt"),
        Model("branches_at_inference", ChoiceRule.Of(("both", BranchesAtInference.Both), ("stronger", BranchesAtInference.Stronger)), "both",
            m => m.Branches, (m, v) => m with { Branches = v }, a => a == ModelArchitecture.ParallelGpt, "parallel-gpt"),
        Model("global_every", IntegerRule.AtLeast(1, MaxLayers), 3L, m => m.GlobalEvery, (m, v) => m with { GlobalEvery = v },
            ModelFamilies.IsEttin, EttinArches),
        Model("local_window", IntegerRule.AtLeast(1, MaxLength), null, m => m.LocalWindow, (m, v) => m with { LocalWindow = v },
            ModelFamilies.IsEttin, EttinArches),
        Model("global_rope_theta", NumberRule.Positive, 160000.0, m => m.GlobalRopeTheta, (m, v) => m with { GlobalRopeTheta = v },
            ModelFamilies.IsEttin, EttinArches),
        Model("preset", new ChoiceRule(EttinPresets.Names), null, m => m.Preset, (m, v) => m with { Preset = v },
            ModelFamilies.IsEttin, EttinArches),
        Model("init_from", new PatternRule(InitFromPattern(),
                "RUN/TRIAL or RUN/TRIAL@STEP (a committed checkpoint in the runs folder), an absolute path to a trial's checkpoints folder, or its azure://ACCOUNT/container/.../checkpoints[@STEP]"),
            null, m => m.InitFrom, (m, v) => m with { InitFrom = v }),

        new("objective.kind", Objectives, Required: true) { Get = s => s.Objective.Kind },
        Objective("input_length", IntegerRule.AtLeast(8, MaxLength), 128L, o => o.InputLength, (o, v) => o with { InputLength = v }),
        Objective("noise_density", NumberRule.Between(0, false, 1, false), 0.15, o => o.NoiseDensity, (o, v) => o with { NoiseDensity = v }),
        Objective("mean_span_length", NumberRule.AtLeast(1), 3.0, o => o.MeanSpanLength, (o, v) => o with { MeanSpanLength = v }),
        Objective("mask_rate", NumberRule.Between(0, false, 1, false), 0.3, o => o.MaskRate, (o, v) => o with { MaskRate = v }),
        Objective("eval_mask_rate", NumberRule.Between(0, false, 1, false), 0.15, o => o.EvalMaskRate, (o, v) => o with { EvalMaskRate = v }),
        WrittenWhen(s => s.ReadsTasks,
            Objective("target_length", IntegerRule.AtLeast(2, MaxLength), 64L, o => o.TargetLength, (o, v) => o with { TargetLength = v })),

        Distill("teacher", new PatternRule(InitFromPattern(),
                "RUN/TRIAL or RUN/TRIAL@STEP (a trial this system trained), an absolute path to a trial's checkpoints folder or to a Hugging Face Llama folder (config.json + *.safetensors), azure://ACCOUNT/container/.../checkpoints[@STEP], or {stage: NAME, pick: ...} in a stage"),
            null, d => d.Teacher, (d, v) => d with { Teacher = v }),
        Distill("alpha", NumberRule.Between(0, true, 1, true), 0.9, d => d.Alpha, (d, v) => d with { Alpha = v }),
        Distill("divergence", ChoiceRule.Of(("forward-kl", DistillDivergenceKind.ForwardKl), ("reverse-kl", DistillDivergenceKind.ReverseKl),
            ("jsd", DistillDivergenceKind.Jsd)), "forward-kl", d => d.Divergence, (d, v) => d with { Divergence = v }),
        Distill("beta", NumberRule.Between(0, false, 1, false), 0.5, d => d.Beta, (d, v) => d with { Beta = v }),
        Distill("temperature", NumberRule.Positive, 1.0, d => d.Temperature, (d, v) => d with { Temperature = v }),
        Distill("on_policy", NumberRule.Between(0, true, 1, true), 1.0, d => d.OnPolicy, (d, v) => d with { OnPolicy = v }),
        Distill("sample_temperature", NumberRule.Positive, 0.9, d => d.SampleTemperature, (d, v) => d with { SampleTemperature = v }),
        Distill("sample_top_k", IntegerRule.AtLeast(0, MaxLength), 128L, d => d.SampleTopK, (d, v) => d with { SampleTopK = v }),
        Distill("max_new_tokens", IntegerRule.AtLeast(1, MaxLength), 256L, d => d.MaxNewTokens, (d, v) => d with { MaxNewTokens = v }),
        Distill("max_staleness", new IntegerRule(0, 16), 0L, d => d.MaxStaleness, (d, v) => d with { MaxStaleness = v }),
        Distill("transport", ChoiceRule.Of(("full", TeacherTransportKind.Full), ("topk", TeacherTransportKind.TopK)), "full",
            d => d.Transport, (d, v) => d with { Transport = v }),
        Distill("top_k", IntegerRule.AtLeast(1, MaxLength), 64L, d => d.TopK, (d, v) => d with { TopK = v }),
        Distill("relations", ChoiceRule.Of(("none", DistillRelations.None), ("logits", DistillRelations.Logits),
                ("miniend-d", DistillRelations.MiniEndD), ("miniend-e", DistillRelations.MiniEndE)), "none",
            d => d.Relations, (d, v) => d with { Relations = v }),
        Distill("relation_heads", IntegerRule.AtLeast(0, MaxHeads), 0L, d => d.RelationHeads, (d, v) => d with { RelationHeads = v }),
        Distill("relation_weight", NumberRule.AtLeast(0), 1.0, d => d.RelationWeight, (d, v) => d with { RelationWeight = v }),
        Distill("data", ChoiceRule.Of(("tasks", DistillData.Tasks), ("span-corruption", DistillData.SpanCorruption)), "tasks",
            d => d.Data, (d, v) => d with { Data = v }),

        Optimizer("kind", ChoiceRule.Of(("adamw", OptimizerKind.AdamW), ("stable-adamw", OptimizerKind.StableAdamW)), "adamw",
            o => o.Kind, (o, v) => o with { Kind = v }),
        Optimizer("lr", NumberRule.Positive, 3e-4, o => o.Lr, (o, v) => o with { Lr = v }),
        Optimizer("beta1", NumberRule.Between(0, true, 1, false), 0.9, o => o.Beta1, (o, v) => o with { Beta1 = v }),
        Optimizer("beta2", NumberRule.Between(0, true, 1, false), 0.999, o => o.Beta2, (o, v) => o with { Beta2 = v }),
        Optimizer("eps", NumberRule.Positive, 1e-8, o => o.Eps, (o, v) => o with { Eps = v }),
        Optimizer("weight_decay", NumberRule.NonNegative, 0.01, o => o.WeightDecay, (o, v) => o with { WeightDecay = v }),
        Optimizer("grad_clip", NumberRule.NonNegative, 1.0, o => o.GradClip, (o, v) => o with { GradClip = v }),

        Schedule("kind", ChoiceRule.Of(("cosine", ScheduleKind.Cosine), ("wsd", ScheduleKind.Wsd), ("constant", ScheduleKind.Constant)), "cosine",
            o => o.Kind, (o, v) => o with { Kind = v }),
        Schedule("warmup_steps", IntegerRule.AtLeast(0), 0L, o => o.WarmupSteps, (o, v) => o with { WarmupSteps = v }),
        Schedule("min_lr_ratio", NumberRule.Between(0, true, 1, true), 0.1, o => o.MinLrRatio, (o, v) => o with { MinLrRatio = v }),
        Schedule("decay_fraction", NumberRule.Between(0, false, 1, true), 0.2, o => o.DecayFraction, (o, v) => o with { DecayFraction = v }),

        Train("steps", IntegerRule.AtLeast(0), 100L, t => t.Steps, (t, v) => t with { Steps = v }),
        Train("global_batch", IntegerRule.AtLeast(1, MaxLength), 16L, t => t.GlobalBatch, (t, v) => t with { GlobalBatch = v }),
        Train("micro_batch", IntegerRule.AtLeast(1, MaxLength), null, t => t.MicroBatch, (t, v) => t with { MicroBatch = v }),
        Train("eval_every", IntegerRule.AtLeast(0), 0L, t => t.EvalEvery, (t, v) => t with { EvalEvery = v }),
        Train("eval_batches", IntegerRule.AtLeast(1, MaxLength), 4L, t => t.EvalBatches, (t, v) => t with { EvalBatches = v }),
        Train("checkpoint_every", IntegerRule.AtLeast(0), 0L, t => t.CheckpointEvery, (t, v) => t with { CheckpointEvery = v }),
        Train("keep_checkpoints", IntegerRule.AtLeast(1, 10_000), 3L, t => t.KeepCheckpoints, (t, v) => t with { KeepCheckpoints = v }),
        Train("log_every", IntegerRule.AtLeast(1), 10L, t => t.LogEvery, (t, v) => t with { LogEvery = v }),

        Resources("workers", IntegerRule.AtLeast(1, 4_096), 1L, r => r.Workers, (r, v) => r with { Workers = v }),
        Resources("min_workers", IntegerRule.AtLeast(1, 4_096), null, r => r.MinWorkers, (r, v) => r with { MinWorkers = v }),
        Resources("threads", IntegerRule.AtLeast(1, 1_024), 1L, r => r.Threads, (r, v) => r with { Threads = v }),
        Resources("device", new PatternRule(DevicePattern(), "cpu, cuda or cuda:N"), "cpu", r => r.Device, (r, v) => r with { Device = v }),
        Resources("max_concurrent_trials", IntegerRule.AtLeast(1, 4_096), 1L, r => r.MaxConcurrentTrials, (r, v) => r with { MaxConcurrentTrials = v }),
        WrittenWhen(s => s.Resources.MaxRestarts != ResourcesSpec.DefaultMaxRestarts,
            Resources("max_restarts", new IntegerRule(0, 1_000), (long)ResourcesSpec.DefaultMaxRestarts, r => r.MaxRestarts, (r, v) => r with { MaxRestarts = v })),
        WrittenWhen(s => s.Resources.Teachers > 0,
            Resources("teachers", new IntegerRule(0, 4_096), 0L, r => r.Teachers, (r, v) => r with { Teachers = v })),
    ];

    private static readonly Dictionary<string, SchemaKey> ByPath = All.ToDictionary(k => k.Path);

    /// <summary>Every dotted key an experiment file may contain (without the sweep section), in file order.</summary>
    public static IReadOnlyList<string> Keys { get; } = All.Select(k => k.Path).ToList();

    /// <summary>The dotted keys a sweep may vary.</summary>
    public static IReadOnlyList<string> SweepableKeys { get; } = All.Where(k => k.Sweepable).Select(k => k.Path).ToList();

    internal static SchemaKey? Find(string path) => ByPath.GetValueOrDefault(path);

    /// <summary>The YAML names a choice key allows (empty for other keys).</summary>
    public static IReadOnlyList<string> ChoicesOf(string path) => Find(path)?.Rule is ChoiceRule choice ? choice.Choices : [];

    internal static IEnumerable<SchemaKey> InSection(string section) => All.Where(k => k.Section == section);

    /// <summary>Top-level names: the scalar keys and the sections (and sweep).</summary>
    internal static IReadOnlyList<string> TopLevelNames { get; } =
        All.Where(k => k.Section == "").Select(k => k.Path).Concat(Sections).Append(SweepSection).Append(StagesSection).ToList();

    /// <summary>The model keys that set <paramref name="field"/> of <see cref="TransformerConfig"/>. The layer counts come
    /// from the split keys; a problem is reported at the first of them that was written, the fraction first (a split that
    /// leaves a stack empty is the fraction's doing).</summary>
    internal static IReadOnlyList<string> KeysOfField(string field) => field switch
    {
        nameof(TransformerConfig.EncoderLayers) or nameof(TransformerConfig.DecoderLayers) =>
            ["model.encoder_fraction", "model.layers", "model.encoder_layers", "model.decoder_layers"],
        _ => All.Where(k => k.Field == field).Select(k => k.Path).ToList(),
    };

    /// <summary>A spec with nothing set: the binder starts from it, then applies defaults and written values.</summary>
    internal static ExperimentSpec Blank(string sourceFile) => new(
        Name: "", Seed: 0, new DataSpec([], []), new TokenizerSpec(TokenizerKind.Byte, 0),
        new TransformerConfig(0, 0, 0, 0, 0, 0, 0, 0) { Architecture = ModelArchitecture.EncoderDecoder },
        new ObjectiveSpec(ObjectiveKind.SpanCorruption, 0, 0, 0, 0, 0),
        new OptimizerSpec(OptimizerKind.AdamW, 0, 0, 0, 0, 0, 0),
        new ScheduleSpec(ScheduleKind.Cosine, 0, 0, 0),
        new TrainSpec(0, 0, 0, 0, 0, 0, 0, 0),
        new ResourcesSpec(0, 0, "", 0),
        Sweep: null, sourceFile);

    // ---- one helper per section: the entry names its record's field once, for reading and for writing ----

    private static SchemaKey Top<T>(string path, ValueRule rule, object? defaultValue,
        Func<ExperimentSpec, T> get, Func<ExperimentSpec, T, ExperimentSpec> set, bool required = false) =>
        new(path, rule, defaultValue, required) { Get = s => get(s), Set = (s, v) => set(s, Typed<T>(v)) };

    private static SchemaKey InSection<TSection, T>(string path, ValueRule rule, object? defaultValue,
        Func<ExperimentSpec, TSection> section, Func<ExperimentSpec, TSection, ExperimentSpec> put,
        Func<TSection, T> get, Func<TSection, T, TSection> set) =>
        new(path, rule, defaultValue) { Get = s => get(section(s)), Set = (s, v) => put(s, set(section(s), Typed<T>(v))) };

    private static SchemaKey Tokenizer<T>(string leaf, ValueRule rule, object? defaultValue, Func<TokenizerSpec, T> get, Func<TokenizerSpec, T, TokenizerSpec> set) =>
        InSection("tokenizer." + leaf, rule, defaultValue, s => s.Tokenizer, (s, t) => s with { Tokenizer = t }, get, set);

    private static SchemaKey Model<T>(string leaf, ValueRule rule, object? defaultValue,
        Func<TransformerConfig, T> get, Func<TransformerConfig, T, TransformerConfig> set,
        Func<ModelArchitecture, bool>? appliesTo = null, string? family = null, string? onlyWhen = null, bool required = false,
        [CallerArgumentExpression(nameof(get))] string getter = "")
    {
        var key = InSection("model." + leaf, rule, defaultValue, s => s.Model, (s, m) => s with { Model = m }, get, set);
        return key with
        {
            Required = required,
            Get = appliesTo is null ? key.Get : s => appliesTo(s.Model.Architecture) ? key.Get(s) : null,
            AppliesTo = appliesTo,
            Family = family,
            OnlyWhen = onlyWhen,
            Field = getter[(getter.LastIndexOf('.') + 1)..],
        };
    }

    /// <summary>A layer-split key: read by the binder with the others of the split, written from the resolved counts.</summary>
    private static SchemaKey Split(string leaf, Func<TransformerConfig, int?> get) =>
        new("model." + leaf, IntegerRule.AtLeast(1, MaxLayers)) { Get = s => get(s.Model) };

    private static SchemaKey Objective<T>(string leaf, ValueRule rule, object? defaultValue, Func<ObjectiveSpec, T> get, Func<ObjectiveSpec, T, ObjectiveSpec> set) =>
        InSection("objective." + leaf, rule, defaultValue, s => s.Objective, (s, o) => s with { Objective = o }, get, set);

    /// <summary>A <c>distill:</c> key: written out only for a distillation spec, so other specs read as before.</summary>
    private static SchemaKey Distill<T>(string leaf, ValueRule rule, object? defaultValue, Func<DistillSpec, T> get, Func<DistillSpec, T, DistillSpec> set) =>
        WrittenWhen(s => s.Objective.Kind == ObjectiveKind.Distill,
            InSection("distill." + leaf, rule, defaultValue, s => s.Distill, (s, d) => s with { Distill = d }, get, set));

    /// <summary>A key the writer emits only where it means something, so specs that do not use it read as before.</summary>
    private static SchemaKey WrittenWhen(Func<ExperimentSpec, bool> applies, SchemaKey key) =>
        key with { Get = s => applies(s) ? key.Get(s) : null };

    private static SchemaKey Optimizer<T>(string leaf, ValueRule rule, object? defaultValue, Func<OptimizerSpec, T> get, Func<OptimizerSpec, T, OptimizerSpec> set) =>
        InSection("optimizer." + leaf, rule, defaultValue, s => s.Optimizer, (s, o) => s with { Optimizer = o }, get, set);

    private static SchemaKey Schedule<T>(string leaf, ValueRule rule, object? defaultValue, Func<ScheduleSpec, T> get, Func<ScheduleSpec, T, ScheduleSpec> set) =>
        InSection("schedule." + leaf, rule, defaultValue, s => s.Schedule, (s, o) => s with { Schedule = o }, get, set);

    private static SchemaKey Train<T>(string leaf, ValueRule rule, object? defaultValue, Func<TrainSpec, T> get, Func<TrainSpec, T, TrainSpec> set) =>
        InSection("train." + leaf, rule, defaultValue, s => s.Train, (s, t) => s with { Train = t }, get, set);

    private static SchemaKey Resources<T>(string leaf, ValueRule rule, object? defaultValue, Func<ResourcesSpec, T> get, Func<ResourcesSpec, T, ResourcesSpec> set) =>
        InSection("resources." + leaf, rule, defaultValue, s => s.Resources, (s, r) => s with { Resources = r }, get, set);

    /// <summary>A rule's value as the record field's type: integer rules give long, int fields take them (rules bound them).</summary>
    private static T Typed<T>(object value)
    {
        var target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        return value is long l && target == typeof(int) ? (T)(object)checked((int)l) : (T)value;
    }

    /// <summary>True for a safe experiment name (also the pattern of trial and run ids, which build paths).</summary>
    public static bool IsName(string text) => NamePattern().IsMatch(text);

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]*$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^([a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*(@[0-9]+)?|/[^\\x00-\\x1f]+|azure://[^\\s?#@]+(@[0-9]+)?)$")]
    private static partial Regex InitFromPattern();

    [GeneratedRegex("^(cpu|cuda|cuda:[0-9]+)$")]
    private static partial Regex DevicePattern();
}
