using TorchSharp;
using Training.Shared.Data;
using Training.Shared.Spec;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>Builds the model an experiment's <c>model:</c> section describes, sized to its tokenizer.</summary>
public static class ModelFactory
{
    public static TransformerConfig ConfigFor(ModelSpec spec, ITokenizer tokenizer) =>
        ConfigFor(spec, tokenizer.VocabSize, tokenizer.Special.Pad);

    /// <summary>The config of <paramref name="spec"/> at a vocabulary of <paramref name="vocabSize"/> ids.</summary>
    public static TransformerConfig ConfigFor(ModelSpec spec, int vocabSize, int padId)
    {
        var architecture = ArchitectureOf(spec.Arch);
        var config = new TransformerConfig(
            VocabSize: vocabSize,
            DModel: spec.DModel,
            EncoderLayers: spec.EncoderLayers,
            DecoderLayers: spec.DecoderLayers,
            Heads: spec.Heads,
            KvHeads: spec.KvHeads,
            HeadDim: spec.HeadDim,
            FfnDim: spec.FfnDim,
            Mlp: MlpFor(spec),
            Dropout: spec.Dropout,
            RopeTheta: spec.RopeTheta,
            NormEps: spec.NormEps,
            PadId: padId,
            // The GPT family's head is its own Linear with bias (the paper's parameter counts include it).
            TieEmbeddings: !spec.IsGptFamily)
        {
            Architecture = architecture,
            NormPosition = spec.NormPosition == NormPosition.Post ? NormPlacement.Post : NormPlacement.Pre,
            MaxPositions = spec.MaxPositions,
            CompressionStages = spec.CompressionStages,
            DropWeakerBranchAtInference = spec.Branches == BranchesAtInference.Stronger,
            GlobalEvery = spec.GlobalEvery,
            LocalWindow = spec.LocalWindow,
            GlobalRopeTheta = spec.GlobalRopeTheta,
        };
        config.Validate();
        return config;
    }

    public static ModelArchitecture ArchitectureOf(ModelArch arch) => arch switch
    {
        ModelArch.EncoderDecoder => ModelArchitecture.EncoderDecoder,
        ModelArch.DecoderOnly => ModelArchitecture.DecoderOnly,
        ModelArch.Gpt => ModelArchitecture.Gpt,
        ModelArch.ParallelGpt => ModelArchitecture.ParallelGpt,
        ModelArch.LinearlyCompressedGpt => ModelArchitecture.LinearlyCompressedGpt,
        ModelArch.ConvCompressedGpt => ModelArchitecture.ConvCompressedGpt,
        ModelArch.EncoderOnly => ModelArchitecture.EttinEncoder,
        ModelArch.EttinDecoder => ModelArchitecture.EttinDecoder,
        _ => throw new ArgumentOutOfRangeException(nameof(arch), arch, "unknown model.arch"),
    };

    private static MlpKind MlpFor(ModelSpec spec) => spec.Mlp switch
    {
        MlpChoice.Gelu => MlpKind.GeluTanh,
        MlpChoice.SwiGlu => MlpKind.SwiGlu,
        MlpChoice.GeGlu => MlpKind.GeGlu,
        _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Mlp, "unknown model.mlp"),
    };

    /// <summary>A freshly initialised model; the same seed gives the same weights.</summary>
    public static ILanguageModel Create(ModelSpec spec, ITokenizer tokenizer, long seed, Device device)
    {
        var config = ConfigFor(spec, tokenizer);
        manual_seed(seed);
        var model = Create(config);
        if (device.type != DeviceType.CPU) ((nn.Module)model).to(device);
        return model;
    }

    /// <summary>The model class of <paramref name="config"/>'s architecture, initialised from the current torch seed.</summary>
    public static ILanguageModel Create(TransformerConfig config) => config.Architecture switch
    {
        ModelArchitecture.EncoderDecoder => new EncoderDecoderModel(config),
        ModelArchitecture.DecoderOnly => new DecoderOnlyModel(config),
        ModelArchitecture.Gpt => new Gpt(config),
        ModelArchitecture.ParallelGpt => new ParallelGpt(config),
        ModelArchitecture.LinearlyCompressedGpt or ModelArchitecture.ConvCompressedGpt => new CompressedGpt(config),
        ModelArchitecture.EttinEncoder => new EttinEncoder(config),
        ModelArchitecture.EttinDecoder => new EttinDecoder(config),
        _ => throw new ArgumentOutOfRangeException(nameof(config), config.Architecture, "unknown architecture"),
    };
}
