namespace Training.Shared.Models;

/// <summary>Which model a config describes; each value is one class in this folder. The YAML spelling is in SpecSchema.</summary>
public enum ModelArchitecture
{
    /// <summary><see cref="EncoderDecoderModel"/> (SPEC.md section 1).</summary>
    EncoderDecoder,

    /// <summary><see cref="DecoderOnlyModel"/>: the encoder-decoder's decoder-only twin.</summary>
    DecoderOnly,

    /// <summary><see cref="Gpt"/>: the baseline of the decoder-variants paper (SPEC.md section 3).</summary>
    Gpt,

    /// <summary><see cref="ParallelGpt"/>: two half-width branches mixed by a learned weight.</summary>
    ParallelGpt,

    /// <summary><see cref="CompressedGpt"/> with Linear compressors (lc-gpt).</summary>
    LinearlyCompressedGpt,

    /// <summary><see cref="CompressedGpt"/> with Conv1d(kernel 1) compressors (cc-gpt).</summary>
    ConvCompressedGpt,

    /// <summary><see cref="EttinEncoder"/>: the bidirectional half of an Ettin pair (SPEC.md section 2), MLM head.</summary>
    EncoderOnly,

    /// <summary><see cref="EttinDecoder"/>: the causal twin of <see cref="EttinEncoder"/>, same weights shape.</summary>
    EttinDecoder,
}

/// <summary>The families the architectures fall into; the one place each family is defined.</summary>
public static class ModelFamilies
{
    public static bool IsGptFamily(this ModelArchitecture a) =>
        a is ModelArchitecture.Gpt or ModelArchitecture.ParallelGpt or ModelArchitecture.LinearlyCompressedGpt or ModelArchitecture.ConvCompressedGpt;

    public static bool IsCompressedGpt(this ModelArchitecture a) =>
        a is ModelArchitecture.LinearlyCompressedGpt or ModelArchitecture.ConvCompressedGpt;

    public static bool IsEttin(this ModelArchitecture a) => a is ModelArchitecture.EncoderOnly or ModelArchitecture.EttinDecoder;

    /// <summary>Every architecture except the encoder-decoder and the encoder-only model predicts the next token.</summary>
    public static bool IsCausal(this ModelArchitecture a) => a is not (ModelArchitecture.EncoderDecoder or ModelArchitecture.EncoderOnly);
}

/// <summary>Which feed-forward network each block uses.</summary>
public enum MlpKind
{
    /// <summary>d -> ffn -> d with GELU (tanh approximation), as in the "Return of the Encoder" 330M model and GPT.</summary>
    GeluTanh,

    /// <summary>SwiGLU: silu(gate(x)) * up(x) -> down, three projections of the same widths.</summary>
    SwiGlu,

    /// <summary>GeGLU (the Ettin / ModernBERT MLP): gelu(input(x)) * gate(x) -> down, exact GELU.</summary>
    GeGlu,
}

/// <summary>Where a GPT block normalises: before each sub-layer (pre-LN) or after each residual sum (post-LN).</summary>
public enum NormPosition
{
    Pre,
    Post,
}

/// <summary>parallel-gpt at inference (eval): both branches, or only the one with the larger learned weight.</summary>
public enum BranchesAtInference
{
    Both,
    Stronger,
}

/// <summary>A problem with a shape: the fields it involves (first the one to blame) and why, in the YAML's words.</summary>
public sealed record ShapeProblem(IReadOnlyList<string> Fields, string Message);

/// <summary>
/// The shape of every model in this folder, and the <c>model:</c> section of an experiment (the spec holds it with
/// VocabSize 0; <see cref="WithVocabulary"/> joins the tokenizer's vocabulary when the model is built).
/// The positional fields describe the encoder-decoder of SPEC.md section 1 (and its decoder-only twin:
/// EncoderLayers = 0, DecoderLayers = all layers); the init-only fields select and shape the other architectures.
/// Attention width is Heads * HeadDim, which may be narrower than DModel (384 vs 1024 in the reference model).
/// Layers of a single-stack model sit in DecoderLayers, except for the encoder-only model, whose layers sit in
/// EncoderLayers (it has no decoder).
/// </summary>
public sealed record TransformerConfig(
    int VocabSize,
    int DModel,
    int EncoderLayers,
    int DecoderLayers,
    int Heads,
    int KvHeads,
    int HeadDim,
    int FfnDim,
    MlpKind Mlp = MlpKind.GeluTanh,
    double Dropout = 0.1,
    double RopeTheta = 10000,
    double NormEps = 1e-6,
    int PadId = 0,
    bool TieEmbeddings = true)
{
    private readonly ModelArchitecture? architecture;

    /// <summary>The released 330M text model (SPEC.md section 1): 332,042,240 parameters.</summary>
    public static TransformerConfig Reference330M { get; } = new(
        VocabSize: 32128, DModel: 1024, EncoderLayers: 20, DecoderLayers: 10,
        Heads: 6, KvHeads: 3, HeadDim: 64, FfnDim: 4096);

    /// <summary>The model class; left unset it is the encoder-decoder, or its decoder-only twin when EncoderLayers = 0.</summary>
    public ModelArchitecture Architecture
    {
        get => architecture ?? (EncoderLayers == 0 ? ModelArchitecture.DecoderOnly : ModelArchitecture.EncoderDecoder);
        init => architecture = value;
    }

    /// <summary>Encoder-decoder: the share of layers in the encoder, kept only when the experiment gave it.</summary>
    public double? EncoderFraction { get; init; }

    /// <summary>Ettin: the released size (<see cref="EttinPresets"/>) the shape came from, when the experiment named one.</summary>
    public string? Preset { get; init; }

    /// <summary>Where the initial weights come from (<c>model.init_from</c>): a committed checkpoint named as RUN/TRIAL[@STEP]
    /// or a checkpoints folder; null starts from random weights. Not part of the shape: any architecture whose tensors
    /// have the same names and shapes can start from it.</summary>
    public string? InitFrom { get; init; }

    /// <summary>GPT family: pre-LN or post-LN blocks.</summary>
    public NormPosition NormPosition { get; init; } = NormPosition.Pre;

    /// <summary>Decoder-only twin: whether its attention and MLP projections have biases (false for a Llama teacher).</summary>
    public bool Bias { get; init; } = true;

    /// <summary>GPT family: rows of the learned position table, the longest input the model reads.</summary>
    public int MaxPositions { get; init; }

    /// <summary>lc-gpt / cc-gpt: [blocks -> halve the width] repeated this many times (2 in the paper: 384 -> 192 -> 96).</summary>
    public int CompressionStages { get; init; } = 2;

    /// <summary>parallel-gpt: at inference (eval mode) run both branches, or only the one with the larger mixing weight.</summary>
    public BranchesAtInference Branches { get; init; } = BranchesAtInference.Both;

    /// <summary>Ettin: layer i attends globally when i % GlobalEvery == 0, else through the sliding window.</summary>
    public int GlobalEvery { get; init; } = 3;

    /// <summary>Ettin: sliding window of local layers. Encoder: keys within LocalWindow/2 on either side
    /// (128 -> +-64); decoder: the query and the LocalWindow - 1 keys before it (64).</summary>
    public int LocalWindow { get; init; } = 128;

    /// <summary>Ettin: RoPE base of global layers (local layers use <see cref="RopeTheta"/>).</summary>
    public double GlobalRopeTheta { get; init; } = 160_000;

    /// <summary>Query width: Heads * HeadDim.</summary>
    public int AttentionDim => Heads * HeadDim;

    /// <summary>Key/value width: KvHeads * HeadDim.</summary>
    public int KeyValueDim => KvHeads * HeadDim;

    /// <summary>True when the model has no encoder stack (every causal architecture).</summary>
    public bool IsDecoderOnly => EncoderLayers == 0;

    /// <summary>All layers (blocks) of the model.</summary>
    public int Layers => EncoderLayers + DecoderLayers;

    public bool IsGptFamily => Architecture.IsGptFamily();

    public bool IsEttin => Architecture.IsEttin();

    /// <summary>True when the model attends with rotary embeddings (everything but the GPT family, which learns positions).</summary>
    public bool UsesRotary => !IsGptFamily;

    /// <summary>This shape at a tokenizer's vocabulary: what a model is built from.</summary>
    public TransformerConfig WithVocabulary(int vocabSize, int padId) => this with { VocabSize = vocabSize, PadId = padId };

    /// <summary>Width of the residual stream in compression stage <paramref name="stage"/> (stage CompressionStages is the head's).</summary>
    public int StageWidth(int stage) => DModel >> stage;

    /// <summary>The config of one GPT block of width <paramref name="width"/>: heads keep their number and shrink with it.</summary>
    public TransformerConfig AtWidth(int width) => this with
    {
        DModel = width,
        HeadDim = width / Heads,
        FfnDim = (int)((long)FfnDim * width / DModel),
    };

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first field whose value cannot build a model.</summary>
    public void Validate()
    {
        Require(Enum.IsDefined(Architecture), nameof(Architecture), Architecture, "is not a known ModelArchitecture");
        Require(VocabSize > 0, nameof(VocabSize), VocabSize, "must be positive");
        // -1: no padding id in this vocabulary (a teacher whose tokenizer puts pad past it): no key is masked.
        Require(PadId >= -1 && PadId < VocabSize, nameof(PadId), PadId, $"must be a token id in [0, {VocabSize}), or -1 for none");
        if (IsGptFamily)
            Require(!TieEmbeddings, nameof(TieEmbeddings), TieEmbeddings, "must be false in the GPT family (its head is a separate Linear with bias)");
        if (ShapeProblems().FirstOrDefault() is { } problem)
        {
            var field = problem.Fields[0];
            var value = GetType().GetProperty(field)?.GetValue(this);
            throw new ArgumentException($"TransformerConfig.{field} = {value}: {problem.Message}.", field);
        }
    }

    /// <summary>
    /// Every reason this shape cannot be built (nothing about the vocabulary), in the order they are checked. The
    /// experiment binder reports these at the YAML keys of the fields; <see cref="Validate"/> throws the first.
    /// </summary>
    public IEnumerable<ShapeProblem> ShapeProblems()
    {
        ShapeProblem Problem(string message, params string[] fields) => new(fields, message);

        if (DModel <= 0) yield return Problem($"d_model ({DModel}) must be positive", nameof(DModel));
        switch (Architecture)
        {
            case ModelArchitecture.EncoderDecoder:
                if (EncoderLayers <= 0 || DecoderLayers <= 0)
                    yield return Problem($"the split leaves {EncoderLayers} encoder and {DecoderLayers} decoder layers out of {Layers}; each stack needs >= 1",
                        EncoderLayers <= 0 ? nameof(EncoderLayers) : nameof(DecoderLayers));
                break;
            case ModelArchitecture.EncoderOnly:
                if (EncoderLayers <= 0) yield return Problem("an encoder-only model keeps its layers in EncoderLayers: it must be positive", nameof(EncoderLayers));
                if (DecoderLayers != 0) yield return Problem("an encoder-only model has no decoder: DecoderLayers must be 0", nameof(DecoderLayers));
                break;
            default:
                if (EncoderLayers != 0) yield return Problem($"EncoderLayers must be 0 for {Architecture} (a single causal stack)", nameof(EncoderLayers));
                if (DecoderLayers <= 0) yield return Problem($"layers ({DecoderLayers}) must be positive", nameof(DecoderLayers));
                break;
        }
        if (Heads <= 0) yield return Problem($"heads ({Heads}) must be positive", nameof(Heads));
        if (KvHeads <= 0) yield return Problem($"kv_heads ({KvHeads}) must be positive", nameof(KvHeads));
        else if (Heads > 0 && Heads % KvHeads != 0)
            yield return Problem($"kv_heads ({KvHeads}) must divide heads ({Heads}): each key/value head serves heads/kv_heads query heads",
                nameof(KvHeads), nameof(Heads));
        if (HeadDim <= 0) yield return Problem($"head_dim ({HeadDim}) must be positive", nameof(HeadDim));
        else if (UsesRotary && HeadDim % 2 != 0)
            yield return Problem($"head_dim ({HeadDim}) must be even: rotary embeddings rotate pairs of dimensions", nameof(HeadDim));
        if (FfnDim <= 0) yield return Problem($"ffn_dim ({FfnDim}) must be positive", nameof(FfnDim));
        if (!Enum.IsDefined(Mlp)) yield return Problem($"{Mlp} is not a known MlpKind", nameof(Mlp));
        if (Dropout is not (>= 0 and < 1)) yield return Problem($"dropout ({Dropout}) must be in [0, 1)", nameof(Dropout));
        if (!(RopeTheta > 0 && double.IsFinite(RopeTheta))) yield return Problem("rope_theta must be positive and finite", nameof(RopeTheta));
        if (!(NormEps > 0 && double.IsFinite(NormEps))) yield return Problem("norm_eps must be positive and finite", nameof(NormEps));
        if (IsGptFamily)
            foreach (var problem in GptShapeProblems()) yield return problem;
        if (IsEttin)
        {
            if (GlobalEvery <= 0) yield return Problem("global_every must be positive (1 = every layer global)", nameof(GlobalEvery));
            if (LocalWindow <= 0) yield return Problem("local_window must be positive", nameof(LocalWindow));
            if (!(GlobalRopeTheta > 0 && double.IsFinite(GlobalRopeTheta)))
                yield return Problem("global_rope_theta must be positive and finite", nameof(GlobalRopeTheta));
        }
    }

    private IEnumerable<ShapeProblem> GptShapeProblems()
    {
        // A GPT block's attention is as wide as its residual stream (heads split d_model).
        if (Heads > 0 && (long)Heads * HeadDim != DModel)
            yield return new([nameof(HeadDim), nameof(Heads), nameof(DModel)],
                $"a GPT block splits d_model between its heads: heads ({Heads}) * head_dim ({HeadDim}) must equal d_model ({DModel}); " +
                "leave head_dim out to derive it");
        if (MaxPositions <= 0)
            yield return new([nameof(MaxPositions)], $"max_positions ({MaxPositions}) must be positive: the GPT family learns one embedding per position");
        if (Architecture == ModelArchitecture.ParallelGpt && DecoderLayers % 2 != 0)
            yield return new([nameof(DecoderLayers)], $"parallel-gpt splits its blocks between two branches: layers ({DecoderLayers}) must be even");
        if (!Architecture.IsCompressedGpt()) yield break;
        if (CompressionStages is not (> 0 and < 16))
        {
            yield return new([nameof(CompressionStages)], $"compression_stages ({CompressionStages}) must be in [1, 15]");
            yield break;
        }
        if (DecoderLayers % CompressionStages != 0)
            yield return new([nameof(DecoderLayers), nameof(CompressionStages)],
                $"every compression stage has the same number of blocks: layers ({DecoderLayers}) must be a multiple of compression_stages ({CompressionStages})");
        var divisor = (long)Heads << CompressionStages;
        if (divisor > 0 && DModel % divisor != 0)
            yield return new([nameof(DModel), nameof(CompressionStages), nameof(Heads)],
                $"each of {CompressionStages} compression stages halves the width and keeps {Heads} heads: d_model ({DModel}) must be divisible by " +
                $"heads * 2^compression_stages = {divisor}");
        if (FfnDim % (1 << (CompressionStages - 1)) != 0)
            yield return new([nameof(FfnDim), nameof(CompressionStages)],
                $"ffn_dim ({FfnDim}) halves with the width at every stage: it must be divisible by {1 << (CompressionStages - 1)}");
    }

    private static void Require(bool condition, string field, object value, string rule)
    {
        if (!condition)
            throw new ArgumentException($"TransformerConfig.{field} = {value} {rule}.", field);
    }
}
