using System.Text.RegularExpressions;

namespace Training.Shared.Spec;

/// <summary>One key of the experiment schema: its dotted path, what it accepts and its default.</summary>
/// <param name="Default">long, double or string; null when the key is required or its default is derived from other keys.</param>
internal sealed record SchemaKey(string Path, ValueRule Rule, object? Default = null, bool Required = false)
{
    public string Section => Path.Contains('.') ? Path[..Path.IndexOf('.')] : "";
    public string Leaf => Path.Contains('.') ? Path[(Path.IndexOf('.') + 1)..] : Path;

    /// <summary>Name and seed identify the experiment, data lists are not scalars: everything else can be swept.</summary>
    public bool Sweepable => Rule is not PathListRule && Path is not ("name" or "seed");
}

/// <summary>
/// The one table of every key an experiment file may contain. The YAML reader rejects keys not listed here,
/// the binder reads values through these rules, the sweep checks its keys against it and the writer
/// emits keys in this order. docs/experiment-yaml.md documents each entry (a test checks that).
/// </summary>
public static partial class SpecSchema
{
    internal const string SweepSection = "sweep";

    internal static readonly IReadOnlyList<string> Sections =
        ["data", "tokenizer", "model", "objective", "optimizer", "schedule", "train", "resources"];

    internal static readonly IReadOnlyList<SchemaKey> All =
    [
        new("name", new PatternRule(NamePattern(), "a name matching [a-z0-9][a-z0-9-_]* (lowercase letters, digits, - and _)"), Required: true),
        new("seed", new IntegerRule(long.MinValue, long.MaxValue), 0L),

        new("data.train", new PathListRule(), Required: true),
        new("data.eval", new PathListRule()),

        new("tokenizer.kind", new ChoiceRule(["byte", "cl100k", "char"]), "byte"),
        new("tokenizer.sentinels", new IntegerRule(0, 1000), 100L),

        new("model.arch", new ChoiceRule(["encoder-decoder", "decoder-only", "gpt", "parallel-gpt", "lc-gpt", "cc-gpt", "encoder-only", "ettin-decoder"]), Required: true),
        new("model.d_model", AtLeast(1), 256L),
        new("model.layers", AtLeast(1)),
        new("model.encoder_layers", AtLeast(1)),
        new("model.decoder_layers", AtLeast(1)),
        new("model.encoder_fraction", NumberRule.Between(0, false, 1, false)),
        new("model.heads", AtLeast(1), 4L),
        new("model.kv_heads", AtLeast(1)),
        new("model.head_dim", AtLeast(2), 64L),
        new("model.ffn_dim", AtLeast(1)),
        new("model.mlp", new ChoiceRule(["gelu", "swiglu", "geglu"])),
        new("model.dropout", NumberRule.Between(0, true, 1, false)),
        new("model.rope_theta", NumberRule.Positive, 10000.0),
        new("model.norm_eps", NumberRule.Positive),
        new("model.norm_position", new ChoiceRule(["pre", "post"]), "pre"),
        new("model.max_positions", AtLeast(1)),
        new("model.compression_stages", new IntegerRule(1, 8), 2L),
        new("model.branches_at_inference", new ChoiceRule(["both", "stronger"]), "both"),
        new("model.global_every", AtLeast(1), 3L),
        new("model.local_window", AtLeast(1)),
        new("model.global_rope_theta", NumberRule.Positive, 160000.0),
        new("model.preset", new ChoiceRule(Models.EttinPresets.Names)),

        new("objective.kind", new ChoiceRule(["span-corruption", "clm", "mlm", "auto"]), Required: true),
        new("objective.input_length", AtLeast(8), 128L),
        new("objective.noise_density", NumberRule.Between(0, false, 1, false), 0.15),
        new("objective.mean_span_length", NumberRule.AtLeast(1), 3.0),
        new("objective.mask_rate", NumberRule.Between(0, false, 1, false), 0.3),
        new("objective.eval_mask_rate", NumberRule.Between(0, false, 1, false), 0.15),

        new("optimizer.kind", new ChoiceRule(["adamw", "stable-adamw"]), "adamw"),
        new("optimizer.lr", NumberRule.Positive, 3e-4),
        new("optimizer.beta1", NumberRule.Between(0, true, 1, false), 0.9),
        new("optimizer.beta2", NumberRule.Between(0, true, 1, false), 0.999),
        new("optimizer.eps", NumberRule.Positive, 1e-8),
        new("optimizer.weight_decay", NumberRule.NonNegative, 0.01),
        new("optimizer.grad_clip", NumberRule.NonNegative, 1.0),

        new("schedule.kind", new ChoiceRule(["cosine", "wsd", "constant"]), "cosine"),
        new("schedule.warmup_steps", AtLeast(0), 0L),
        new("schedule.min_lr_ratio", NumberRule.Between(0, true, 1, true), 0.1),
        new("schedule.decay_fraction", NumberRule.Between(0, false, 1, true), 0.2),

        new("train.steps", AtLeast(1), 100L),
        new("train.global_batch", AtLeast(1), 16L),
        new("train.micro_batch", AtLeast(1)),
        new("train.eval_every", AtLeast(0), 0L),
        new("train.eval_batches", AtLeast(1), 4L),
        new("train.checkpoint_every", AtLeast(0), 0L),
        new("train.keep_checkpoints", AtLeast(1), 3L),
        new("train.log_every", AtLeast(1), 10L),

        new("resources.workers", AtLeast(1), 1L),
        new("resources.min_workers", AtLeast(1)),
        new("resources.threads", AtLeast(1), 1L),
        new("resources.device", new PatternRule(DevicePattern(), "cpu, cuda or cuda:N"), "cpu"),
        new("resources.max_concurrent_trials", AtLeast(1), 1L),
    ];

    private static readonly Dictionary<string, SchemaKey> ByPath = All.ToDictionary(k => k.Path);

    /// <summary>Every dotted key an experiment file may contain (without the sweep section), in file order.</summary>
    public static IReadOnlyList<string> Keys { get; } = All.Select(k => k.Path).ToList();

    /// <summary>The dotted keys a sweep may vary.</summary>
    public static IReadOnlyList<string> SweepableKeys { get; } = All.Where(k => k.Sweepable).Select(k => k.Path).ToList();

    internal static SchemaKey? Find(string path) => ByPath.GetValueOrDefault(path);

    internal static IEnumerable<SchemaKey> InSection(string section) => All.Where(k => k.Section == section);

    /// <summary>Top-level names: the scalar keys and the sections (and sweep).</summary>
    internal static IReadOnlyList<string> TopLevelNames { get; } =
        All.Where(k => k.Section == "").Select(k => k.Path).Concat(Sections).Append(SweepSection).ToList();

    private static IntegerRule AtLeast(long min) => new(min, int.MaxValue);

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]*$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^(cpu|cuda|cuda:[0-9]+)$")]
    private static partial Regex DevicePattern();
}
