using Training.Shared.Models;

namespace Training.Tests.Models;

/// <summary>Small shapes that keep every model test to milliseconds while exercising GQA (4 query heads, 2 KV heads).</summary>
internal static class TinyConfigs
{
    public const int Pad = 0;
    public const int Bos = 1;
    public const int Eos = 2;

    public static TransformerConfig EncoderDecoder(MlpKind mlp = MlpKind.GeluTanh, bool tie = true) => new(
        VocabSize: 37, DModel: 32, EncoderLayers: 2, DecoderLayers: 2, Heads: 4, KvHeads: 2, HeadDim: 8, FfnDim: 64,
        Mlp: mlp, Dropout: 0.0, PadId: Pad, TieEmbeddings: tie);

    public static TransformerConfig DecoderOnly(MlpKind mlp = MlpKind.GeluTanh, bool tie = true) =>
        EncoderDecoder(mlp, tie) with { EncoderLayers = 0, DecoderLayers = 3 };
}
