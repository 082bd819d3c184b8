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
        var name = Text("name") ?? "";
        var seed = Long("seed") ?? 0;
        var data = BindData(Path.GetDirectoryName(sourceFile) ?? "/");
        var tokenizer = new TokenizerSpec(
            SpecNames.Tokenizers[TextOrDefault("tokenizer.kind")],
            IntOrDefault("tokenizer.sentinels"));
        var model = BindModel();
        var objective = BindObjective(model, tokenizer);
        var optimizer = new OptimizerSpec(
            SpecNames.Optimizers[TextOrDefault("optimizer.kind")],
            DoubleOrDefault("optimizer.lr"),
            DoubleOrDefault("optimizer.beta1"),
            DoubleOrDefault("optimizer.beta2"),
            DoubleOrDefault("optimizer.eps"),
            DoubleOrDefault("optimizer.weight_decay"),
            DoubleOrDefault("optimizer.grad_clip"));
        var resources = new ResourcesSpec(
            IntOrDefault("resources.workers"),
            IntOrDefault("resources.threads"),
            TextOrDefault("resources.device"),
            IntOrDefault("resources.max_concurrent_trials"),
            Int("resources.min_workers"));
        if (resources.MinWorkers is { } minWorkers && minWorkers > resources.Workers && Valid("resources.min_workers", "resources.workers"))
            Conflict($"min_workers ({minWorkers}) must not exceed workers ({resources.Workers})", "resources.min_workers", "resources.workers");
        var train = BindTrain(resources);
        var schedule = BindSchedule(train);
        return new ExperimentSpec(name, seed, data, tokenizer, model, objective, optimizer, schedule, train, resources,
            Sweep: null, sourceFile);
    }

    private DataSpec BindData(string baseFolder)
    {
        IReadOnlyList<string> Resolve(string key)
        {
            var patterns = DataPatterns(document, key, errors, invalid);
            return new SpecList<string>(patterns.Select(p => Path.GetFullPath(Path.Combine(baseFolder, p.Text))));
        }
        return new DataSpec(Resolve("data.train"), Resolve("data.eval"));
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

    private ModelSpec BindModel()
    {
        var arch = Text("model.arch") is { } archText ? SpecNames.Arches[archText] : (ModelArch?)null;
        var archValid = arch is not null;
        var resolvedArch = arch ?? ModelArch.EncoderDecoder;
        bool Is(params ModelArch[] arches) => arch is { } a && arches.Contains(a);
        var gpt = Is(ModelArch.Gpt, ModelArch.ParallelGpt, ModelArch.LinearlyCompressedGpt, ModelArch.ConvCompressedGpt);
        var compressed = Is(ModelArch.LinearlyCompressedGpt, ModelArch.ConvCompressedGpt);
        var ettin = Is(ModelArch.EncoderOnly, ModelArch.EttinDecoder);
        const string ettinArches = "encoder-only and ettin-decoder";

        var preset = OnlyFor("model.preset", ettin, archValid, ettinArches) ? Text("model.preset") : null;
        var presetShape = preset is null ? null : Models.EttinPresets.Get(preset);

        var dModel = Int("model.d_model") ?? presetShape?.Hidden ?? (int)(long)Default("model.d_model");
        var (layers, encoderLayers, decoderLayers) = resolvedArch switch
        {
            ModelArch.EncoderDecoder => EncoderDecoderLayers(),
            ModelArch.EncoderOnly => SingleStackLayers(encoder: true, presetShape?.Layers),
            _ => SingleStackLayers(encoder: false, presetShape?.Layers),
        };
        var heads = Int("model.heads") ?? presetShape?.Heads ?? (int)(long)Default("model.heads");
        var kvHeads = Int("model.kv_heads") ?? heads;
        // A GPT block splits its width between its heads; elsewhere heads keep their own width (64 by default).
        var headDim = Int("model.head_dim")
                      ?? (gpt && heads > 0 && dModel % heads == 0 ? dModel / heads : (int)(long)Default("model.head_dim"));
        var ffnDim = Int("model.ffn_dim") ?? presetShape?.Intermediate ?? 4 * dModel;
        var mlp = Text("model.mlp") is { } mlpText ? SpecNames.Mlps[mlpText] : ettin ? MlpChoice.GeGlu : MlpChoice.Gelu;
        // The Ettin recipe trains without dropout; LayerNorm models (GPT, Ettin) use PyTorch's LayerNorm eps.
        var dropout = Double("model.dropout") ?? (ettin ? 0.0 : 0.1);
        var normEps = Double("model.norm_eps") ?? (gpt || ettin ? 1e-5 : 1e-6);

        if (Valid("model.heads", "model.kv_heads") && heads % kvHeads != 0)
            Conflict($"kv_heads ({kvHeads}) must divide heads ({heads}): each key/value head serves heads/kv_heads query heads",
                "model.kv_heads", "model.heads");
        if (!gpt && Valid("model.head_dim") && headDim % 2 != 0)
            Conflict($"head_dim ({headDim}) must be even: rotary embeddings rotate pairs of dimensions", "model.head_dim");

        var normPosition = OnlyFor("model.norm_position", gpt, archValid, "the GPT family (gpt, parallel-gpt, lc-gpt, cc-gpt)", onlyWhen: "post")
            ? SpecNames.NormPositions[TextOrDefault("model.norm_position")] : NormPosition.Pre;
        var inputLength = IntOrDefault("objective.input_length");
        var maxPositions = OnlyFor("model.max_positions", gpt, archValid, "the GPT family, which learns position embeddings")
            ? Int("model.max_positions") ?? inputLength : 0;
        var stages = OnlyFor("model.compression_stages", compressed, archValid, "lc-gpt and cc-gpt")
            ? IntOrDefault("model.compression_stages") : (int)(long)Default("model.compression_stages");
        var branches = OnlyFor("model.branches_at_inference", Is(ModelArch.ParallelGpt), archValid, "parallel-gpt")
            ? SpecNames.Branches[TextOrDefault("model.branches_at_inference")] : BranchesAtInference.Both;
        var globalEvery = OnlyFor("model.global_every", ettin, archValid, ettinArches)
            ? IntOrDefault("model.global_every") : (int)(long)Default("model.global_every");
        // Ettin's local layers: +-64 around each token in the encoder, the previous 64 in the decoder.
        var localWindow = OnlyFor("model.local_window", ettin, archValid, ettinArches)
            ? Int("model.local_window") ?? (arch == ModelArch.EttinDecoder ? 64 : 128) : 128;
        var globalRopeTheta = OnlyFor("model.global_rope_theta", ettin, archValid, ettinArches)
            ? DoubleOrDefault("model.global_rope_theta") : (double)Default("model.global_rope_theta");

        if (gpt) CheckGptShape(resolvedArch, dModel, layers, heads, headDim, ffnDim, stages, maxPositions, inputLength);

        return new ModelSpec(
            resolvedArch,
            dModel,
            layers,
            encoderLayers,
            decoderLayers,
            resolvedArch == ModelArch.EncoderDecoder ? Double("model.encoder_fraction") : null,
            heads,
            kvHeads,
            headDim,
            ffnDim,
            mlp,
            dropout,
            DoubleOrDefault("model.rope_theta"),
            normEps,
            preset,
            normPosition,
            maxPositions,
            stages,
            branches,
            globalEvery,
            localWindow,
            globalRopeTheta);
    }

    /// <summary>
    /// True when <paramref name="key"/> shapes this architecture. A key written for an architecture it does not
    /// shape is an error, unless model.arch comes from a sweep (then the file's key serves the trials it fits).
    /// With <paramref name="onlyWhen"/>, only that value is an error (norm_position: pre is what every other block does).
    /// </summary>
    private bool OnlyFor(string key, bool applies, bool archValid, string architectures, string? onlyWhen = null)
    {
        if (applies || !archValid || !document.Has(key) || document.IsSwept("model.arch")) return applies;
        if (onlyWhen is null || Text(key) == onlyWhen)
            Conflict($"{key[6..]} applies to {architectures} only, but model.arch is {Text("model.arch")}", key, "model.arch");
        return false;
    }

    private void CheckGptShape(ModelArch arch, int dModel, int layers, int heads, int headDim, int ffnDim, int stages, int maxPositions, int inputLength)
    {
        if (Valid("model.heads", "model.head_dim", "model.d_model") && heads * headDim != dModel)
            Conflict($"a GPT block splits d_model between its heads: heads ({heads}) * head_dim ({headDim}) must equal d_model ({dModel}); " +
                     "leave head_dim out to derive it", "model.head_dim", "model.heads", "model.d_model");
        if (Valid("model.max_positions", "objective.input_length") && maxPositions < inputLength)
            Conflict($"max_positions ({maxPositions}) must be >= objective.input_length ({inputLength}): the model learns one embedding per position",
                "model.max_positions", "objective.input_length");
        if (arch == ModelArch.ParallelGpt && Valid("model.layers") && layers % 2 != 0)
            Conflict($"parallel-gpt splits its blocks between two branches: layers ({layers}) must be even", "model.layers");
        if (arch is not (ModelArch.LinearlyCompressedGpt or ModelArch.ConvCompressedGpt)
            || !Valid("model.layers", "model.compression_stages", "model.d_model", "model.heads", "model.ffn_dim")) return;
        if (layers % stages != 0)
            Conflict($"every compression stage has the same number of blocks: layers ({layers}) must be a multiple of compression_stages ({stages})",
                "model.layers", "model.compression_stages");
        var divisor = (long)heads << stages;
        if (dModel % divisor != 0)
            Conflict($"each of {stages} compression stages halves the width and keeps {heads} heads: d_model ({dModel}) must be divisible by " +
                     $"heads * 2^compression_stages = {divisor}", "model.d_model", "model.compression_stages", "model.heads");
        if (ffnDim % (1 << (stages - 1)) != 0)
            Conflict($"ffn_dim ({ffnDim}) halves with the width at every stage: it must be divisible by {1 << (stages - 1)}",
                "model.ffn_dim", "model.compression_stages");
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

        var decoderLayers = total - encoderLayers;
        if (encoderLayers < 1 || decoderLayers < 1)
            Conflict($"the split leaves {encoderLayers} encoder and {decoderLayers} decoder layers out of {total}; each stack needs >= 1",
                "model.encoder_fraction", "model.layers", "model.encoder_layers", "model.decoder_layers");
        return (total, encoderLayers, decoderLayers);
    }

    private static int Split(int layers, double fraction) => (int)Math.Round(layers * fraction, MidpointRounding.AwayFromZero);

    private ObjectiveSpec BindObjective(ModelSpec model, TokenizerSpec tokenizer)
    {
        var kindText = Text("objective.kind");
        var archKnown = Valid("model.arch") && document.Has("model.arch");
        // auto: the objective each architecture was pretrained with in its paper.
        var kind = kindText is null or SpecNames.AutoObjective ? NativeObjective(model.Arch) : SpecNames.Objectives[kindText];
        var objective = new ObjectiveSpec(
            kind,
            IntOrDefault("objective.input_length"),
            DoubleOrDefault("objective.noise_density"),
            DoubleOrDefault("objective.mean_span_length"),
            DoubleOrDefault("objective.mask_rate"),
            DoubleOrDefault("objective.eval_mask_rate"));
        if (kindText is null || !archKnown) return objective;

        if (kindText != SpecNames.AutoObjective && !Fits(kind, model))
        {
            var needed = SpecNames.Arches.Where(pair => Fits(kind, model with { Arch = pair.Value })).Select(pair => pair.Key).ToList();
            var neededText = needed.Count == 1 ? needed[0] : string.Join(", ", needed[..^1]) + " or " + needed[^1];
            Conflict($"{kindText} requires model.arch {neededText}, but model.arch is {SpecNames.Of(SpecNames.Arches, model.Arch)} " +
                     "(objective.kind: auto picks the objective that fits each architecture)",
                "objective.kind", "model.arch");
        }

        if (kind == ObjectiveKind.Mlm && Valid("tokenizer.sentinels") && tokenizer.Sentinels < 1)
            Conflict("mlm replaces tokens by a mask id, the tokenizer's first sentinel: tokenizer.sentinels must be >= 1, but it is 0",
                "tokenizer.sentinels", "objective.kind");

        if (kind == ObjectiveKind.SpanCorruption
            && Valid("objective.input_length", "objective.noise_density", "objective.mean_span_length", "tokenizer.sentinels"))
        {
            var spans = SpansPerExample(objective.InputLength, objective.NoiseDensity, objective.MeanSpanLength);
            if (tokenizer.Sentinels < spans)
                Conflict($"span corruption with input_length {objective.InputLength}, noise_density {SpecText.Number(objective.NoiseDensity)} " +
                         $"and mean_span_length {SpecText.Number(objective.MeanSpanLength)} needs {spans} sentinels per example, " +
                         $"but tokenizer.sentinels is {tokenizer.Sentinels}",
                    "tokenizer.sentinels", "objective.input_length", "objective.noise_density", "objective.mean_span_length");
        }
        return objective;
    }

    /// <summary>span-corruption for the encoder-decoder, mlm for the encoder-only model, clm for every causal model.</summary>
    internal static ObjectiveKind NativeObjective(ModelArch arch) => arch switch
    {
        ModelArch.EncoderDecoder => ObjectiveKind.SpanCorruption,
        ModelArch.EncoderOnly => ObjectiveKind.Mlm,
        _ => ObjectiveKind.Clm,
    };

    private static bool Fits(ObjectiveKind kind, ModelSpec model) => kind == NativeObjective(model.Arch);

    /// <summary>
    /// Noise spans in one span-corruption example (T5 algorithm): the raw length L is the largest with
    /// (L - noise) + spans + 1 &lt;= input_length, noise = clamp(round(L * density), 1, L - 1),
    /// spans = max(1, round(noise / mean_span)). Each span takes one sentinel id.
    /// </summary>
    internal static int SpansPerExample(int inputLength, double density, double meanSpan)
    {
        long Noise(long raw) => Math.Clamp((long)Math.Round(raw * density), 1, Math.Max(1, raw - 1));
        long Spans(long raw) => Math.Max(1, (long)Math.Round(Noise(raw) / meanSpan));
        long Encoded(long raw) => raw - Noise(raw) + Spans(raw) + 1;

        // Encoded grows with raw (up to rounding steps): binary search, then settle the last few steps.
        long low = 2, high = 2;
        while (Encoded(high) <= inputLength) high *= 2;
        while (low < high)
        {
            var middle = (low + high + 1) / 2;
            if (Encoded(middle) <= inputLength) low = middle; else high = middle - 1;
        }
        while (Encoded(low + 1) <= inputLength) low++;
        return (int)Spans(low);
    }

    private TrainSpec BindTrain(ResourcesSpec resources)
    {
        var globalBatch = IntOrDefault("train.global_batch");
        var microBatch = Int("train.micro_batch");
        if (microBatch is null && Valid("train.micro_batch"))
        {
            // Default: no accumulation, each rank takes its whole share of the global batch at once.
            if (globalBatch % resources.Workers == 0) microBatch = globalBatch / resources.Workers;
            else if (Valid("train.global_batch", "resources.workers"))
                Conflict($"global_batch ({globalBatch}) must be divisible by resources.workers ({resources.Workers}) " +
                         "so every rank gets the same share", "train.global_batch", "resources.workers");
        }
        else if (microBatch is { } micro && Valid("train.global_batch", "resources.workers")
                 && globalBatch % (micro * resources.Workers) != 0)
        {
            Conflict($"global_batch ({globalBatch}) must be divisible by micro_batch ({micro}) * resources.workers " +
                     $"({resources.Workers}) = {micro * resources.Workers}",
                "train.micro_batch", "train.global_batch", "resources.workers");
        }

        // Elastic trials may run on any group size from min_workers to workers: every one must split the batch evenly.
        if (microBatch is { } m && resources.MinWorkers is { } fewest && Valid("resources.min_workers", "train.global_batch"))
        {
            foreach (var n in Enumerable.Range(fewest, Math.Max(0, resources.Workers - fewest)))
            {
                if (globalBatch % (m * n) == 0) continue;
                Conflict($"with {n} workers (min_workers {fewest} .. workers {resources.Workers}) global_batch ({globalBatch}) " +
                         $"must be divisible by micro_batch ({m}) * {n} = {m * n}", "resources.min_workers", "train.global_batch", "train.micro_batch");
                break;
            }
        }

        return new TrainSpec(
            IntOrDefault("train.steps"),
            globalBatch,
            microBatch ?? 1,
            IntOrDefault("train.eval_every"),
            IntOrDefault("train.eval_batches"),
            IntOrDefault("train.checkpoint_every"),
            IntOrDefault("train.keep_checkpoints"),
            IntOrDefault("train.log_every"));
    }

    private ScheduleSpec BindSchedule(TrainSpec train)
    {
        var schedule = new ScheduleSpec(
            SpecNames.Schedules[TextOrDefault("schedule.kind")],
            IntOrDefault("schedule.warmup_steps"),
            DoubleOrDefault("schedule.min_lr_ratio"),
            DoubleOrDefault("schedule.decay_fraction"));
        if (Valid("schedule.warmup_steps", "train.steps") && schedule.WarmupSteps > 0 && schedule.WarmupSteps >= train.Steps)
            Conflict($"warmup_steps ({schedule.WarmupSteps}) must be < train.steps ({train.Steps})",
                "schedule.warmup_steps", "train.steps");
        return schedule;
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
            case ScalarValue value:
                var (typed, error) = key.Rule.Convert(value.Scalar);
                if (error is not null) Invalid(path, value.Position, error);
                return typed;
            case var other:
                Invalid(path, other.Position, $"expected {key.Rule.Allowed}, got {Describe(other)}");
                return null;
        }
    }

    private long? Long(string path) => Value(path) as long?;
    private int? Int(string path) => Value(path) is long value ? (int)value : null;
    private double? Double(string path) => Value(path) as double?;
    private string? Text(string path) => Value(path) as string;

    private int IntOrDefault(string path) => Int(path) ?? (int)(long)Default(path);
    private double DoubleOrDefault(string path) => Double(path) ?? (double)Default(path);
    private string TextOrDefault(string path) => Text(path) ?? (string)Default(path);

    private static object Default(string path) =>
        SpecSchema.Find(path)?.Default ?? throw new InvalidOperationException($"{path} has no fixed default");

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
