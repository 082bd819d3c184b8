namespace Training.Shared.Models;

/// <summary>Which feed-forward network each block uses.</summary>
public enum MlpKind
{
    /// <summary>d -> ffn -> d with GELU (tanh approximation), as in the "Return of the Encoder" 330M model.</summary>
    GeluTanh,

    /// <summary>SwiGLU: silu(gate(x)) * up(x) -> down, three projections of the same widths.</summary>
    SwiGlu,
}

/// <summary>
/// Shape of an encoder-decoder model, or of its decoder-only twin (EncoderLayers = 0, DecoderLayers = all layers).
/// Attention width is Heads * HeadDim, which may be narrower than DModel (384 vs 1024 in the reference model).
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
    /// <summary>The released 330M text model (SPEC.md section 1): 332,042,240 parameters.</summary>
    public static TransformerConfig Reference330M { get; } = new(
        VocabSize: 32128, DModel: 1024, EncoderLayers: 20, DecoderLayers: 10,
        Heads: 6, KvHeads: 3, HeadDim: 64, FfnDim: 4096);

    /// <summary>Query width: Heads * HeadDim.</summary>
    public int AttentionDim => Heads * HeadDim;

    /// <summary>Key/value width: KvHeads * HeadDim.</summary>
    public int KeyValueDim => KvHeads * HeadDim;

    /// <summary>True for the decoder-only twin, which has no encoder stack.</summary>
    public bool IsDecoderOnly => EncoderLayers == 0;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first field whose value cannot build a model.</summary>
    public void Validate()
    {
        Require(VocabSize > 0, nameof(VocabSize), VocabSize, "must be positive");
        Require(DModel > 0, nameof(DModel), DModel, "must be positive");
        Require(EncoderLayers >= 0, nameof(EncoderLayers), EncoderLayers, "must be 0 (decoder-only) or positive");
        Require(DecoderLayers > 0, nameof(DecoderLayers), DecoderLayers, "must be positive");
        Require(Heads > 0, nameof(Heads), Heads, "must be positive");
        Require(KvHeads > 0, nameof(KvHeads), KvHeads, "must be positive");
        Require(Heads % KvHeads == 0, nameof(KvHeads), KvHeads,
            $"must divide Heads ({Heads}) so that each key/value head serves a whole group of query heads");
        // RoPE rotates pairs of dimensions, so a head needs an even width.
        Require(HeadDim > 0 && HeadDim % 2 == 0, nameof(HeadDim), HeadDim, "must be positive and even (RoPE rotates pairs)");
        Require(FfnDim > 0, nameof(FfnDim), FfnDim, "must be positive");
        Require(Enum.IsDefined(Mlp), nameof(Mlp), Mlp, "is not a known MlpKind");
        Require(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "must be in [0, 1)");
        Require(RopeTheta > 0 && double.IsFinite(RopeTheta), nameof(RopeTheta), RopeTheta, "must be positive and finite");
        Require(NormEps > 0 && double.IsFinite(NormEps), nameof(NormEps), NormEps, "must be positive and finite");
        Require(PadId >= 0 && PadId < VocabSize, nameof(PadId), PadId, $"must be a token id in [0, {VocabSize})");
    }

    private static void Require(bool condition, string field, object value, string rule)
    {
        if (!condition)
            throw new ArgumentException($"TransformerConfig.{field} = {value} {rule}.", field);
    }
}
