using TorchSharp;
using Training.Shared.Data;
using Training.Shared.Spec;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>Builds the model an experiment's <c>model:</c> section describes, sized to its tokenizer.</summary>
public static class ModelFactory
{
    public static TransformerConfig ConfigFor(ModelSpec spec, ITokenizer tokenizer)
    {
        var config = new TransformerConfig(
            VocabSize: tokenizer.VocabSize,
            DModel: spec.DModel,
            EncoderLayers: spec.Arch == ModelArch.EncoderDecoder ? spec.EncoderLayers : 0,
            DecoderLayers: spec.DecoderLayers,
            Heads: spec.Heads,
            KvHeads: spec.KvHeads,
            HeadDim: spec.HeadDim,
            FfnDim: spec.FfnDim,
            Mlp: MlpFor(spec),
            Dropout: spec.Dropout,
            RopeTheta: spec.RopeTheta,
            NormEps: spec.NormEps,
            PadId: tokenizer.Special.Pad);
        config.Validate();
        return config;
    }

    private static MlpKind MlpFor(ModelSpec spec) => spec.Mlp switch
    {
        MlpChoice.Gelu => MlpKind.GeluTanh,
        MlpChoice.SwiGlu => MlpKind.SwiGlu,
        _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Mlp, "unknown model.mlp"),
    };

    /// <summary>A freshly initialised model; the same seed gives the same weights.</summary>
    public static ILanguageModel Create(ModelSpec spec, ITokenizer tokenizer, long seed, Device device)
    {
        var config = ConfigFor(spec, tokenizer);
        manual_seed(seed);
        ILanguageModel model = spec.Arch switch
        {
            ModelArch.EncoderDecoder => new EncoderDecoderModel(config),
            ModelArch.DecoderOnly => new DecoderOnlyModel(config),
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Arch, "unknown model.arch"),
        };
        if (device.type != DeviceType.CPU) ((nn.Module)model).to(device);
        return model;
    }
}
