using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Storage;

namespace Training.Shared.Spec;

/// <summary>
/// Turns a <see cref="SourceDocument"/> into a typed, resolved <see cref="ExperimentSpec"/>: each value through
/// its schema rule, defaults filled in, derived values computed, and the checks that involve several keys.
/// Every problem is added to the error list; the result is null when there was any.
/// </summary>
internal sealed class SpecBinder
{
    private readonly SourceDocument document;
    private readonly ErrorList errors;

    // Keys whose value was wrong: checks that involve them are skipped so one mistake gives one error.
    private readonly HashSet<string> invalid = [];

    // Each key is converted once, so a wrong value is reported once however often it is read.
    private readonly Dictionary<string, object?> converted = [];

    private SpecBinder(SourceDocument document, ErrorList errors)
    {
        this.document = document;
        this.errors = errors;
    }

    /// <summary>Binds without touching the file system; data patterns are resolved against sourceFile's folder.</summary>
    public static ExperimentSpec? Bind(SourceDocument document, string sourceFile, ErrorList errors)
    {
        var before = errors.Count;
        var spec = new SpecBinder(document, errors).BindAll(Path.GetFullPath(sourceFile));
        return errors.Count == before ? spec : null;
    }

    private ExperimentSpec BindAll(string sourceFile)
    {
        // Every key through its schema entry: the table's default, then the written value where it is valid and applies.
        var spec = SpecSchema.Blank(sourceFile);
        var arch = Value("model.arch") as ModelArchitecture?;
        foreach (var key in SpecSchema.All.Where(k => k.Set is not null))
        {
            if (key.TypedDefault is { } fallback) spec = key.Set!(spec, fallback);
            if (Value(key.Path) is { } written && Applies(key, arch)) spec = key.Set!(spec, written);
        }
        spec = spec with { Data = BindData(Path.GetDirectoryName(sourceFile) ?? "/") };
        spec = spec with { Tokenizer = BindTokenizer(spec.Tokenizer, Path.GetDirectoryName(sourceFile) ?? "/") };
        spec = spec with { InitFromStage = BindStageReference(InitFromKey), TeacherFromStage = BindStageReference(TeacherKey) };

        // Rules that span several keys: derived defaults, the layer split, the objective, then the checks.
        spec = spec with { Model = DeriveModelDefaults(spec.Model, spec.Objective.InputLength) };
        spec = spec with { Objective = BindObjective(spec.Objective, spec.Model, Given("model.arch")) };
        spec = spec with { Train = BindTrain(spec.Train, spec.Resources) };
        CheckShape(spec.Model, spec.Objective);
        CheckObjective(spec);
        CheckDistill(spec);
        if (spec.Resources.MinWorkers is { } minWorkers && minWorkers > spec.Resources.Workers && Valid("resources.min_workers", "resources.workers"))
            Conflict($"min_workers ({minWorkers}) must not exceed workers ({spec.Resources.Workers})", "resources.min_workers", "resources.workers");
        // train.steps 0 evaluates the initial weights (usually init_from's) and trains nothing: no schedule applies.
        if (spec.Train.Steps == 0 && spec.Data.Eval.Count == 0 && Valid("train.steps", "data.eval"))
            Conflict("train.steps 0 only evaluates, so it needs data.eval", "train.steps", "data.eval");
        if (Valid("schedule.warmup_steps", "train.steps") && spec.Train.Steps > 0 && spec.Schedule.WarmupSteps > 0 && spec.Schedule.WarmupSteps >= spec.Train.Steps)
            Conflict($"warmup_steps ({spec.Schedule.WarmupSteps}) must be < train.steps ({spec.Train.Steps})",
                "schedule.warmup_steps", "train.steps");
        return spec;
    }

    /// <summary>A tokenizer file's path is written relative to the experiment file; the keys that only the tokenizers
    /// from files take are errors with another kind.</summary>
    private TokenizerSpec BindTokenizer(TokenizerSpec tokenizer, string baseFolder)
    {
        if (tokenizer.Kind.IsFromFiles())
        {
            if (tokenizer.Path is null && Valid("tokenizer.kind"))
                Conflict(tokenizer.Kind == TokenizerKind.SentencePiece
                    ? "tokenizer.kind sentencepiece needs tokenizer.path: the SentencePiece .model file"
                    : "tokenizer.kind bpe needs tokenizer.path: the folder of its vocab.json and merges.txt", "tokenizer.path", "tokenizer.kind");
            return tokenizer.Path is { } path ? tokenizer with { Path = Path.GetFullPath(Path.Combine(baseFolder, path)) } : tokenizer;
        }
        if (Given("tokenizer.path") && Valid("tokenizer.kind"))
            Conflict($"tokenizer.path is the file of a sentencepiece or bpe tokenizer; tokenizer.kind {tokenizer.Kind.ToString().ToLowerInvariant()} takes none", "tokenizer.path", "tokenizer.kind");
        if (tokenizer.PadVocabTo != 1 && Valid("tokenizer.kind"))
            Conflict($"tokenizer.pad_vocab_to pads a sentencepiece or bpe vocabulary; tokenizer.kind {tokenizer.Kind.ToString().ToLowerInvariant()} has a fixed size (cl100k is padded to 128 already)",
                "tokenizer.pad_vocab_to", "tokenizer.kind");
        return tokenizer;
    }

    private DataSpec BindData(string baseFolder)
    {
        IReadOnlyList<string> Resolve(string key)
        {
            var patterns = DataPatterns(document, key, errors, invalid);
            return new SpecList<string>(patterns.Select(p => DataLocation(p.Label, p.Text, p.Position, baseFolder)).OfType<string>());
        }
        return new DataSpec(Resolve("data.train"), Resolve("data.eval"));
    }

    /// <summary>A data pattern as workers get it: an azure:// URI stays as written, a file:// URI becomes its path, a
    /// path becomes absolute against the experiment file's folder. A malformed URI is reported at its line.</summary>
    private string? DataLocation(string label, string text, SourcePosition position, string baseFolder)
    {
        if (!ShardSources.IsStorageUri(text)) return Path.GetFullPath(Path.Combine(baseFolder, text));
        if (ShardSources.Problem(text) is { } problem)
        {
            errors.Add(position, label, problem);
            return null;
        }
        return ShardSources.IsBlobPattern(text) ? text.Trim() : BlobLocation.Parse(text).Folder;
    }

    /// <summary>The patterns written for data.train / data.eval (a string or a list of strings), each with its
    /// dotted label (data.train[1]) and position; shape problems are reported.</summary>
    internal static IReadOnlyList<(string Label, string Text, SourcePosition Position)> DataPatterns(
        SourceDocument document, string key, ErrorList errors, ISet<string>? invalid = null)
    {
        var rule = SpecSchema.Find(key)!;
        var patterns = new List<(string, string, SourcePosition)>();
        void Fail(SourcePosition at, string label, string message)
        {
            errors.Add(at, label, message);
            invalid?.Add(key);
        }

        switch (document.Get(key))
        {
            case null when rule.Required:
                Fail(document.PositionOf(key), key, $"required key is missing: expected {rule.Rule.Allowed}");
                break;
            case null:
                break;
            case ScalarValue { Scalar: { Text: { } text } scalar } when !string.IsNullOrWhiteSpace(text):
                patterns.Add((key, text, scalar.Position));
                break;
            case ListValue list:
                for (var i = 0; i < list.Items.Count; i++)
                {
                    var label = $"{key}[{i}]";
                    if (list.Items[i] is ScalarValue { Scalar: { Text: { } text } scalar } && !string.IsNullOrWhiteSpace(text))
                        patterns.Add((label, text, scalar.Position));
                    else
                        Fail(list.Items[i].Position, label, $"expected a path (file, directory or glob), got {Describe(list.Items[i])}");
                }
                if (list.Items.Count == 0 && rule.Required)
                    Fail(list.Position, key, $"needs at least one path: expected {rule.Rule.Allowed}");
                break;
            case var other:
                Fail(other.Position, key, $"expected {rule.Rule.Allowed}, got {Describe(other)}");
                break;
        }
        return patterns;
    }

    /// <summary>
    /// True when <paramref name="key"/> shapes this architecture (or shapes every one). A key written for an
    /// architecture it does not shape is an error, unless model.arch comes from a sweep (then the file's key serves the
    /// trials it fits). With OnlyWhen, only that value is an error (norm_position: pre is what every other block does).
    /// </summary>
    private bool Applies(SchemaKey key, ModelArchitecture? arch)
    {
        if (key.AppliesTo is null) return true;
        if (arch is not { } a) return false;
        var applies = key.AppliesTo(a);
        if (applies || !document.Has(key.Path) || document.IsSwept("model.arch")) return applies;
        if (key.OnlyWhen is null || Text(key.Path) == key.OnlyWhen)
            Conflict($"{key.Leaf} applies to {key.Family} only, but model.arch is {Text("model.arch")}", key.Path, "model.arch");
        return false;
    }

    /// <summary>Written means given with a valid value: a wrong value is reported once and the key takes its default.</summary>
    private bool Given(string path) => Value(path) is not null;

    /// <summary>Defaults that depend on other keys: the Ettin preset's shape, the family's MLP, dropout and norm eps,
    /// GPT heads that split d_model, positions as long as the input, and the layer split.</summary>
    private TransformerConfig DeriveModelDefaults(TransformerConfig m, int inputLength)
    {
        var arch = m.Architecture;
        var preset = m.Preset is { } name ? EttinPresets.Get(name) : null;
        if (preset is not null)
        {
            if (!Given("model.d_model")) m = m with { DModel = preset.Hidden };
            if (!Given("model.heads")) m = m with { Heads = preset.Heads };
            if (!Given("model.ffn_dim")) m = m with { FfnDim = preset.Intermediate };
        }
        if (!Given("model.kv_heads")) m = m with { KvHeads = m.Heads };
        // A GPT block splits its width between its heads; elsewhere heads keep their own width (64 by default).
        if (!Given("model.head_dim") && arch.IsGptFamily() && m.Heads > 0 && m.DModel % m.Heads == 0) m = m with { HeadDim = m.DModel / m.Heads };
        if (!Given("model.ffn_dim") && preset is null) m = m with { FfnDim = 4 * m.DModel };
        if (!Given("model.mlp")) m = m with { Mlp = arch.IsEttin() ? MlpKind.GeGlu : MlpKind.GeluTanh };
        // The Ettin recipe trains without dropout; LayerNorm models (GPT, Ettin) use PyTorch's LayerNorm eps.
        if (!Given("model.dropout")) m = m with { Dropout = arch.IsEttin() ? 0.0 : 0.1 };
        if (!Given("model.norm_eps")) m = m with { NormEps = arch.IsGptFamily() || arch.IsEttin() ? 1e-5 : 1e-6 };
        if (arch.IsGptFamily() && !Given("model.max_positions"))
            m = m with { MaxPositions = inputLength };
        // Ettin's local layers: +-64 around each token in the encoder, the previous 64 in the decoder.
        if (arch == ModelArchitecture.EttinDecoder && !Given("model.local_window")) m = m with { LocalWindow = 64 };
        // The GPT family's head is its own Linear with bias (the paper's parameter counts include it).
        m = m with { TieEmbeddings = !arch.IsGptFamily() };

        var (_, encoder, decoder) = arch switch
        {
            ModelArchitecture.EncoderDecoder => EncoderDecoderLayers(),
            ModelArchitecture.EncoderOnly => SingleStackLayers(encoder: true, preset?.Layers),
            _ => SingleStackLayers(encoder: false, preset?.Layers),
        };
        return m with
        {
            EncoderLayers = encoder,
            DecoderLayers = decoder,
            EncoderFraction = arch == ModelArchitecture.EncoderDecoder ? Double("model.encoder_fraction") : null,
        };
    }

    /// <summary>The model's own shape rules (TransformerConfig.ShapeProblems), reported at the keys of the fields they
    /// name, plus the one that involves the objective.</summary>
    private void CheckShape(TransformerConfig model, ObjectiveSpec objective)
    {
        foreach (var problem in model.ShapeProblems())
        {
            var keys = problem.Fields.SelectMany(SpecSchema.KeysOfField).Distinct().ToArray();
            if (keys.Length > 0 && Valid(keys)) Conflict(problem.Message, keys);
        }
        if (model.IsGptFamily && Valid("model.max_positions", "objective.input_length") && model.MaxPositions < objective.InputLength)
            Conflict($"max_positions ({model.MaxPositions}) must be >= objective.input_length ({objective.InputLength}): the model learns one embedding per position",
                "model.max_positions", "objective.input_length");
    }

    private const int DefaultLayers = 6;
    private const double DefaultEncoderFraction = 2.0 / 3.0; // the "2/3 - 1/3 split" of the encoder-decoder paper

    /// <summary>
    /// One stack: <c>layers</c> (or, for causal models, <c>decoder_layers</c>, the same thing); a preset's depth by default.
    /// The encoder split keys are errors here, unless model.arch comes from a sweep (they serve the encoder-decoder trials).
    /// </summary>
    private (int Layers, int Encoder, int Decoder) SingleStackLayers(bool encoder, int? presetLayers)
    {
        var arch = Text("model.arch");
        var splitKeys = encoder
            ? new[] { "model.encoder_layers", "model.encoder_fraction", "model.decoder_layers" }
            : new[] { "model.encoder_layers", "model.encoder_fraction" };
        foreach (var splitKey in splitKeys)
        {
            if (document.Has(splitKey) && !document.IsSwept("model.arch"))
                Conflict($"{splitKey[6..]} applies to encoder-decoder models only; model.arch is {arch} (give model.layers)",
                    splitKey, "model.arch");
        }
        var layers = Int("model.layers");
        var decoder = encoder ? null : Int("model.decoder_layers");
        if (layers is { } l && decoder is { } d && l != d)
            Conflict($"a {arch} model has one stack: layers ({l}) and decoder_layers ({d}) must agree; give just layers",
                "model.decoder_layers", "model.layers");
        var total = layers ?? decoder ?? presetLayers ?? DefaultLayers;
        return encoder ? (total, total, 0) : (total, 0, total);
    }

    /// <summary>
    /// Encoder-decoder split: encoder_layers + decoder_layers, or layers + encoder_fraction
    /// (encoder = round(layers * fraction), half away from zero); any extra keys given must agree.
    /// Only layers: the 2/3 split. Nothing: 6 layers, 4 + 2.
    /// </summary>
    private (int Layers, int Encoder, int Decoder) EncoderDecoderLayers()
    {
        var layers = Int("model.layers");
        var encoder = Int("model.encoder_layers");
        var decoder = Int("model.decoder_layers");
        var fraction = Double("model.encoder_fraction");
        if (!Valid("model.layers", "model.encoder_layers", "model.decoder_layers", "model.encoder_fraction"))
            return (layers ?? DefaultLayers, encoder ?? 1, decoder ?? 1);

        int total, encoderLayers;
        if (encoder is { } e && decoder is { } d)
        {
            total = e + d;
            encoderLayers = e;
            if (layers is { } l && l != total)
                Conflict($"the layer split does not add up: layers is {l} but encoder_layers ({e}) + decoder_layers ({d}) = {total}",
                    "model.layers", "model.encoder_layers", "model.decoder_layers");
            if (fraction is { } f && Split(total, f) != e)
                Conflict($"encoder_fraction {SpecText.Number(f)} gives round({total} * {SpecText.Number(f)}) = {Split(total, f)} " +
                         $"encoder layers but encoder_layers is {e}; give either encoder_layers + decoder_layers or layers + encoder_fraction",
                    "model.encoder_fraction", "model.encoder_layers");
        }
        else if (layers is { } l)
        {
            total = l;
            if (fraction is { } f)
            {
                encoderLayers = Split(l, f);
                if (encoder is { } given && given != encoderLayers)
                    Conflict($"the layer split does not add up: layers {l} * encoder_fraction {SpecText.Number(f)} gives {encoderLayers} encoder layers, not {given}",
                        "model.encoder_layers", "model.encoder_fraction", "model.layers");
                if (decoder is { } givenDecoder && givenDecoder != l - encoderLayers)
                    Conflict($"the layer split does not add up: layers {l} * encoder_fraction {SpecText.Number(f)} leaves {l - encoderLayers} decoder layers, not {givenDecoder}",
                        "model.decoder_layers", "model.encoder_fraction", "model.layers");
            }
            else if (encoder is { } givenEncoder) encoderLayers = givenEncoder;
            else if (decoder is { } givenDecoder) encoderLayers = l - givenDecoder;
            else encoderLayers = Split(l, DefaultEncoderFraction);
        }
        else if (encoder is not null || decoder is not null || fraction is not null)
        {
            Conflict("an encoder-decoder split needs encoder_layers + decoder_layers, or layers + encoder_fraction",
                encoder is not null ? "model.encoder_layers" : decoder is not null ? "model.decoder_layers" : "model.encoder_fraction");
            return (DefaultLayers, 1, 1);
        }
        else
        {
            total = DefaultLayers;
            encoderLayers = Split(total, DefaultEncoderFraction);
        }

        return (total, encoderLayers, total - encoderLayers);
    }

    private static int Split(int layers, double fraction) => (int)Math.Round(layers * fraction, MidpointRounding.AwayFromZero);

    /// <summary>objective.kind: auto is the objective each architecture was pretrained with in its paper.</summary>
    private ObjectiveSpec BindObjective(ObjectiveSpec objective, TransformerConfig model, bool archKnown)
    {
        var kind = Value("objective.kind") as ObjectiveKind? ?? ObjectiveSpec.NativeFor(model.Architecture);
        objective = objective with { Kind = kind };
        if (Value("objective.kind") is ObjectiveKind written && archKnown && !ObjectiveSpec.Trains(written, model.Architecture))
        {
            var arches = SpecSchema.Architectures;
            var needed = arches.Choices.Where(name => ObjectiveSpec.Trains(written, (ModelArchitecture)arches.ValueOf(name))).ToList();
            var neededText = needed.Count == 1 ? needed[0] : string.Join(", ", needed[..^1]) + " or " + needed[^1];
            Conflict($"{Text("objective.kind")} requires model.arch {neededText}, but model.arch is {arches.NameOf(model.Architecture)} " +
                     "(objective.kind: auto picks the objective that fits each architecture)",
                "objective.kind", "model.arch");
        }
        return objective;
    }

    /// <summary>What the objective needs from the tokenizer; the span lengths come from SpanCorruption itself.</summary>
    private void CheckObjective(ExperimentSpec spec)
    {
        var (objective, tokenizer) = (spec.Objective, spec.Tokenizer);
        if (!Given("objective.kind") || !Given("model.arch")) return;
        if (objective.Kind == ObjectiveKind.Mlm && Valid("tokenizer.sentinels") && tokenizer.Sentinels < 1)
            Conflict("mlm replaces tokens by a mask id, the tokenizer's first sentinel: tokenizer.sentinels must be >= 1, but it is 0",
                "tokenizer.sentinels", "objective.kind");

        string[] spanKeys = ["tokenizer.sentinels", "objective.input_length", "objective.noise_density", "objective.mean_span_length"];
        if (!(objective.Kind == ObjectiveKind.SpanCorruption || spec.SpanCorruptedText) || !Valid(spanKeys)) return;
        var settings = $"span corruption with input_length {objective.InputLength}, noise_density {SpecText.Number(objective.NoiseDensity)} " +
                       $"and mean_span_length {SpecText.Number(objective.MeanSpanLength)}";
        SpanCorruptionLengths lengths;
        try
        {
            lengths = SpanCorruption.ComputeLengths(objective.InputLength, objective.NoiseDensity, objective.MeanSpanLength);
        }
        catch (ArgumentException e)
        {
            Conflict($"{settings} cannot be built: {e.Message}", spanKeys[1..]);
            return;
        }
        if (tokenizer.Sentinels < lengths.Spans)
            Conflict($"{settings} needs {lengths.Spans} sentinels per example, but tokenizer.sentinels is {tokenizer.Sentinels}", spanKeys);
    }

    /// <summary>distill.* and resources.teachers belong to objective.kind: distill, which needs a teacher and teacher workers.</summary>
    private void CheckDistill(ExperimentSpec spec)
    {
        if (!Valid("objective.kind")) return;
        if (spec.Objective.Kind != ObjectiveKind.Distill)
        {
            foreach (var key in SpecSchema.InSection("distill").Select(k => k.Path).Append("resources.teachers").Where(document.Has))
                Conflict($"{key} applies to objective.kind: distill only, and objective.kind is {SpecSchema.Objectives.NameOf(spec.Objective.Kind)}",
                    key, "objective.kind");
            return;
        }
        if (spec.Distill.Teacher is null && spec.TeacherFromStage is null && !document.StoredTrial && Valid(TeacherKey))
            Invalid(TeacherKey, document.PositionOf(TeacherKey),
                "objective.kind: distill needs a teacher: RUN/TRIAL[@STEP], a checkpoints folder, or {stage: NAME} in a stage");
        if (spec.Resources.Teachers < 1 && Valid("resources.teachers"))
            Conflict("objective.kind: distill scores with teachers served by teacher workers (worker --role teacher): set resources.teachers to 1 or more",
                "resources.teachers", "objective.kind");
        if (spec.SpanCorruptedText && document.Has("objective.target_length") && Valid("distill.data"))
            Conflict("with distill.data span-corruption the targets are span corruption's own (their length follows from input_length, " +
                     "noise_density and mean_span_length): remove objective.target_length", "objective.target_length", "distill.data");
        var relationHeads = spec.Distill.RelationHeads == 0 ? spec.Model.Heads : spec.Distill.RelationHeads;
        if (spec.Distill.Relations is DistillRelations.MiniEndD or DistillRelations.MiniEndE
            && Valid("distill.relations", "distill.relation_heads", "model.heads", "model.head_dim")
            && spec.Model.AttentionDim % relationHeads != 0)
            Conflict($"distill.relation_heads {relationHeads} must divide the student's attention width, model.heads x model.head_dim = " +
                     $"{spec.Model.Heads} x {spec.Model.HeadDim} = {spec.Model.AttentionDim} (and the teacher's)",
                "distill.relation_heads", "model.heads", "model.head_dim");
    }

    private TrainSpec BindTrain(TrainSpec train, ResourcesSpec resources)
    {
        var (globalBatch, workers) = (train.GlobalBatch, resources.Workers);
        int? microBatch = Given("train.micro_batch") ? train.MicroBatch : null;
        if (microBatch is null && Valid("train.micro_batch"))
        {
            // Default: no accumulation, each rank takes its whole share of the global batch at once.
            if (globalBatch % workers == 0) microBatch = globalBatch / workers;
            else if (Valid("train.global_batch", "resources.workers"))
                Conflict($"global_batch ({globalBatch}) must be divisible by resources.workers ({workers}) " +
                         "so every rank gets the same share", "train.global_batch", "resources.workers");
        }
        else if (microBatch is { } micro && Valid("train.global_batch", "resources.workers")
                 && globalBatch % ((long)micro * workers) != 0)
        {
            Conflict($"global_batch ({globalBatch}) must be divisible by micro_batch ({micro}) * resources.workers " +
                     $"({workers}) = {(long)micro * workers}",
                "train.micro_batch", "train.global_batch", "resources.workers");
        }

        // Elastic trials may run on any group size from min_workers to workers: every one must split the batch evenly.
        if (microBatch is { } m && resources.MinWorkers is { } fewest && Valid("resources.min_workers", "train.global_batch"))
        {
            foreach (var n in Enumerable.Range(fewest, Math.Max(0, workers - fewest)))
            {
                if (globalBatch % ((long)m * n) == 0) continue;
                Conflict($"with {n} workers (min_workers {fewest} .. workers {workers}) global_batch ({globalBatch}) " +
                         $"must be divisible by micro_batch ({m}) * {n} = {(long)m * n}", "resources.min_workers", "train.global_batch", "train.micro_batch");
                break;
            }
        }
        return train with { MicroBatch = microBatch ?? 1 };
    }

    private const string InitFromKey = "model.init_from";
    private const string TeacherKey = "distill.teacher";

    /// <summary>
    /// <c>model.init_from</c> or <c>distill.teacher: {stage: NAME, pick: best-eval | last | INDEX}</c> in a stage of a file
    /// with <c>stages:</c>. Whether NAME is a stage this one runs after is checked with the stage graph (<see cref="StageReader"/>).
    /// </summary>
    private StageReference? BindStageReference(string referenceKey)
    {
        if (document.Get(referenceKey) is not MappingValue mapping) return null;
        const string expected = "{stage: NAME, pick: best-eval | last | INDEX}";
        if (!document.InStage)
        {
            Invalid(referenceKey, mapping.Position, $"{referenceKey[(referenceKey.IndexOf('.') + 1)..]} {expected} names a stage, and this file has no stages:; " +
                                                   "give RUN/TRIAL, RUN/TRIAL@STEP or an absolute path to a checkpoints folder");
            return null;
        }
        string? stage = null;
        var stagePosition = mapping.Position;
        var pick = StagePick.BestEval;
        var pickPosition = mapping.Position;
        foreach (var (key, keyPosition, value) in mapping.Entries)
        {
            var text = value is ScalarValue { Scalar.Text: { } t } ? t : null;
            switch (key)
            {
                case "stage" when text is not null && SpecSchema.IsName(text):
                    (stage, stagePosition) = (text, value.Position);
                    break;
                case "stage":
                    Invalid(referenceKey + ".stage", value.Position, $"expected a stage name, got {Describe(value)}");
                    break;
                case "pick" when text is not null && StagePick.Parse(text) is { } parsed:
                    (pick, pickPosition) = (parsed, value.Position);
                    break;
                case "pick":
                    Invalid(referenceKey + ".pick", value.Position,
                        $"expected {StagePick.BestEvalText} (the completed trial with the lowest final eval loss), {StagePick.LastText} " +
                        $"(the stage's last trial) or a trial index (0 = the stage's first), got {Describe(value)}");
                    break;
                default:
                    Invalid($"{referenceKey}.{key}", keyPosition, $"unknown key \"{key}\" in a stage reference: expected {expected}");
                    break;
            }
        }
        if (stage is null)
        {
            if (!mapping.Entries.Any(e => e.Key == "stage"))
                Invalid(referenceKey + ".stage", mapping.Position, $"a stage reference needs stage: {expected}");
            return null;
        }
        return new StageReference(stage, pick) { Position = stagePosition, PickPosition = pickPosition, Key = referenceKey };
    }

    // ---- reading single values ----

    /// <summary>The key's typed value (long, double or string), or null when absent or wrong (then reported).</summary>
    private object? Value(string path)
    {
        if (converted.TryGetValue(path, out var cached)) return cached;
        return converted[path] = Convert(path);
    }

    private object? Convert(string path)
    {
        var key = SpecSchema.Find(path) ?? throw new ArgumentException($"{path} is not a schema key", nameof(path));
        switch (document.Get(path))
        {
            case null:
                if (key.Required) Invalid(path, document.PositionOf(path), $"required key is missing: expected {key.Rule.Allowed}");
                return null;
            case ScalarValue { Scalar.Text: null } value:
                Invalid(path, value.Position, key.Required
                    ? $"has no value: expected {key.Rule.Allowed}"
                    : $"has no value: expected {key.Rule.Allowed} (or remove the key to use its default)");
                return null;
            case MappingValue when path is InitFromKey or TeacherKey:
                return null; // a stage reference, read by BindStageReference
            case ScalarValue value:
                var (typed, error) = key.Rule.Convert(value.Scalar);
                if (error is not null) Invalid(path, value.Position, error);
                return typed;
            case var other:
                Invalid(path, other.Position, $"expected {key.Rule.Allowed}, got {Describe(other)}");
                return null;
        }
    }

    private int? Int(string path) => Value(path) is long value ? (int)value : null;
    private double? Double(string path) => Value(path) as double?;

    /// <summary>The key's value as written (a choice's name, not its enum), or null when absent or wrong.</summary>
    private string? Text(string path) => Value(path) is null ? null : (document.Get(path) as ScalarValue)?.Scalar.Text;

    private static string Describe(SourceValue value) => value switch
    {
        ListValue => "a list",
        MappingValue => "a mapping",
        ScalarValue { Scalar.Text: null } => "nothing",
        ScalarValue scalar => $"\"{scalar.Scalar.Text}\"",
        _ => "something else",
    };

    private void Invalid(string path, SourcePosition at, string message)
    {
        invalid.Add(path);
        errors.Add(at, path, message);
    }

    private bool Valid(params string[] paths) => !paths.Any(invalid.Contains);

    /// <summary>
    /// A rule between several keys. Reported at the first key whose value came from a sweep entry (so a trial's
    /// bad combination points at the sweep), else at the first key written in the file, else the first named.
    /// </summary>
    private void Conflict(string message, params string[] keys)
    {
        var at = keys.FirstOrDefault(document.IsSwept) ?? keys.FirstOrDefault(document.Has) ?? keys[0];
        errors.Add(document.PositionOf(at), at, message);
        invalid.Add(at);
    }
}
