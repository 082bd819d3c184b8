using Training.Shared.Models;

namespace Training.Tests.Models;

/// <summary>Tiny configs of every architecture: milliseconds per forward pass, every structural feature present.</summary>
internal static class ZooConfigs
{
    public const int Vocab = 37;
    public const int Context = 16;

    public static IEnumerable<ModelArchitecture> All => Enum.GetValues<ModelArchitecture>();

    public static IEnumerable<ModelArchitecture> Causal => All.Where(a => a is not (ModelArchitecture.EncoderDecoder or ModelArchitecture.EncoderOnly));

    public static TransformerConfig For(ModelArchitecture architecture) => architecture switch
    {
        ModelArchitecture.EncoderDecoder => TinyConfigs.EncoderDecoder(),
        ModelArchitecture.DecoderOnly => TinyConfigs.DecoderOnly(),
        ModelArchitecture.Gpt or ModelArchitecture.ParallelGpt => Gpt(architecture),
        // 2 stages of 2 blocks: widths 32 -> 16 -> 8, two heads of 16, 8 (the head reads width 8).
        ModelArchitecture.LinearlyCompressedGpt or ModelArchitecture.ConvCompressedGpt => Gpt(architecture) with { Heads = 2, KvHeads = 2, HeadDim = 16 },
        ModelArchitecture.EncoderOnly or ModelArchitecture.EttinDecoder => Ettin(architecture),
        _ => throw new ArgumentOutOfRangeException(nameof(architecture)),
    };

    public static TransformerConfig Gpt(ModelArchitecture architecture, NormPosition norm = NormPosition.Pre) => new(
        VocabSize: Vocab, DModel: 32, EncoderLayers: 0, DecoderLayers: 4, Heads: 4, KvHeads: 4, HeadDim: 8, FfnDim: 128,
        Dropout: 0.0, PadId: TinyConfigs.Pad, TieEmbeddings: false)
    {
        Architecture = architecture,
        MaxPositions = Context,
        NormPosition = norm,
    };

    /// <summary>Four layers (0 and 3 global), a local window of 4, heads of 16 over d 32, GeGLU of 48.</summary>
    public static TransformerConfig Ettin(ModelArchitecture architecture) => new(
        VocabSize: Vocab, DModel: 32,
        EncoderLayers: architecture == ModelArchitecture.EncoderOnly ? 4 : 0,
        DecoderLayers: architecture == ModelArchitecture.EncoderOnly ? 0 : 4,
        Heads: 2, KvHeads: 2, HeadDim: 16, FfnDim: 48, Mlp: MlpKind.GeGlu, Dropout: 0.0, NormEps: 1e-5, PadId: TinyConfigs.Pad)
    {
        Architecture = architecture,
        LocalWindow = 4,
        GlobalEvery = 3,
    };
}
