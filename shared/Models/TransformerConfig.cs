namespace Training.Shared.Models;

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

/// <summary>Which model a config describes; each value is one class in this folder.</summary>
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
    EttinEncoder,

    /// <summary><see cref="EttinDecoder"/>: the causal twin of <see cref="EttinEncoder"/>, same weights shape.</summary>
    EttinDecoder,
}

/// <summary>Where a GPT block normalises: before each sub-layer (pre-LN) or after each residual sum (post-LN).</summary>
public enum NormPlacement
{
    Pre,
    Post,
}

/// <summary>
/// Shape of every model in this folder. The positional fields describe the encoder-decoder of SPEC.md section 1
/// (and its decoder-only twin: EncoderLayers = 0, DecoderLayers = all layers); the init-only fields select and
/// shape the other architectures. Attention width is Heads * HeadDim, which may be narrower than DModel
/// (384 vs 1024 in the reference model). Layers of a single-stack model sit in DecoderLayers, except for the
/// encoder-only model, whose layers sit in EncoderLayers (it has no decoder).
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

    /// <summary>GPT family: pre-LN or post-LN blocks.</summary>
    public NormPlacement NormPosition { get; init; } = NormPlacement.Pre;

    /// <summary>GPT family: rows of the learned position table, the longest input the model reads.</summary>
    public int MaxPositions { get; init; }

    /// <summary>lc-gpt / cc-gpt: [blocks -> halve the width] repeated this many times (2 in the paper: 384 -> 192 -> 96).</summary>
    public int CompressionStages { get; init; } = 2;

    /// <summary>parallel-gpt: at inference (eval mode) keep only the branch with the larger mixing weight.</summary>
    public bool DropWeakerBranchAtInference { get; init; }

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

    public bool IsGptFamily => Architecture is ModelArchitecture.Gpt or ModelArchitecture.ParallelGpt
        or ModelArchitecture.LinearlyCompressedGpt or ModelArchitecture.ConvCompressedGpt;

    public bool IsEttin => Architecture is ModelArchitecture.EttinEncoder or ModelArchitecture.EttinDecoder;

    /// <summary>True when the model attends with rotary embeddings (everything but the GPT family, which learns positions).</summary>
    public bool UsesRotary => !IsGptFamily;

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
        Require(DModel > 0, nameof(DModel), DModel, "must be positive");
        Require(EncoderLayers >= 0, nameof(EncoderLayers), EncoderLayers, "must be 0 (decoder-only) or positive");
        switch (Architecture)
        {
            case ModelArchitecture.EncoderDecoder:
                Require(EncoderLayers > 0, nameof(EncoderLayers), EncoderLayers, "must be positive for an encoder-decoder");
                Require(DecoderLayers > 0, nameof(DecoderLayers), DecoderLayers, "must be positive");
                break;
            case ModelArchitecture.EttinEncoder:
                Require(EncoderLayers > 0, nameof(EncoderLayers), EncoderLayers, "must be positive: an encoder-only model keeps its layers there");
                Require(DecoderLayers == 0, nameof(DecoderLayers), DecoderLayers, "must be 0: an encoder-only model has no decoder");
                break;
            default:
                Require(EncoderLayers == 0, nameof(EncoderLayers), EncoderLayers, $"must be 0 for {Architecture} (a single causal stack)");
                Require(DecoderLayers > 0, nameof(DecoderLayers), DecoderLayers, "must be positive");
                break;
        }
        Require(Heads > 0, nameof(Heads), Heads, "must be positive");
        Require(KvHeads > 0, nameof(KvHeads), KvHeads, "must be positive");
        Require(Heads % KvHeads == 0, nameof(KvHeads), KvHeads,
            $"must divide Heads ({Heads}) so that each key/value head serves a whole group of query heads");
        // RoPE rotates pairs of dimensions, so a head needs an even width.
        if (UsesRotary)
            Require(HeadDim > 0 && HeadDim % 2 == 0, nameof(HeadDim), HeadDim, "must be positive and even (RoPE rotates pairs)");
        else
            Require(HeadDim > 0, nameof(HeadDim), HeadDim, "must be positive");
        Require(FfnDim > 0, nameof(FfnDim), FfnDim, "must be positive");
        Require(Enum.IsDefined(Mlp), nameof(Mlp), Mlp, "is not a known MlpKind");
        Require(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "must be in [0, 1)");
        Require(RopeTheta > 0 && double.IsFinite(RopeTheta), nameof(RopeTheta), RopeTheta, "must be positive and finite");
        Require(NormEps > 0 && double.IsFinite(NormEps), nameof(NormEps), NormEps, "must be positive and finite");
        Require(PadId >= 0 && PadId < VocabSize, nameof(PadId), PadId, $"must be a token id in [0, {VocabSize})");
        if (IsGptFamily) ValidateGpt();
        if (IsEttin) ValidateEttin();
    }

    private void ValidateGpt()
    {
        // A GPT block's attention is as wide as its residual stream (heads split d_model).
        Require(AttentionDim == DModel, nameof(HeadDim), HeadDim,
            $"must be DModel / Heads = {DModel} / {Heads} in the GPT family (attention is as wide as the block)");
        Require(MaxPositions > 0, nameof(MaxPositions), MaxPositions, "must be positive: the GPT family learns one embedding per position");
        Require(!TieEmbeddings, nameof(TieEmbeddings), TieEmbeddings, "must be false in the GPT family (its head is a separate Linear with bias)");
        if (Architecture == ModelArchitecture.ParallelGpt)
            Require(DecoderLayers % 2 == 0, nameof(DecoderLayers), DecoderLayers, "must be even: parallel-gpt splits its blocks between two branches");
        if (Architecture is ModelArchitecture.LinearlyCompressedGpt or ModelArchitecture.ConvCompressedGpt)
        {
            Require(CompressionStages is > 0 and < 16, nameof(CompressionStages), CompressionStages, "must be in [1, 15]");
            Require(DecoderLayers % CompressionStages == 0, nameof(DecoderLayers), DecoderLayers,
                $"must be a multiple of CompressionStages ({CompressionStages}): each stage has the same number of blocks");
            var divisor = (long)Heads << CompressionStages;
            Require(DModel % divisor == 0, nameof(DModel), DModel,
                $"must be divisible by Heads * 2^CompressionStages = {divisor} so every halved stage still splits into {Heads} heads");
            Require(FfnDim % (1 << (CompressionStages - 1)) == 0, nameof(FfnDim), FfnDim,
                $"must be divisible by 2^(CompressionStages - 1) = {1 << (CompressionStages - 1)}: it halves with the width at every stage");
        }
    }

    private void ValidateEttin()
    {
        Require(GlobalEvery > 0, nameof(GlobalEvery), GlobalEvery, "must be positive (1 = every layer global)");
        Require(LocalWindow > 0, nameof(LocalWindow), LocalWindow, "must be positive");
        Require(GlobalRopeTheta > 0 && double.IsFinite(GlobalRopeTheta), nameof(GlobalRopeTheta), GlobalRopeTheta, "must be positive and finite");
    }

    private static void Require(bool condition, string field, object value, string rule)
    {
        if (!condition)
            throw new ArgumentException($"TransformerConfig.{field} = {value} {rule}.", field);
    }
}
