using TorchSharp;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>Builds the model class of a config's architecture.</summary>
public static class ModelFactory
{
    /// <summary>A freshly initialised model of <paramref name="config"/> (a shape joined with its vocabulary); the same seed gives the same weights.</summary>
    public static ILanguageModel Create(TransformerConfig config, long seed, Device device)
    {
        config.Validate();
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
        ModelArchitecture.EncoderOnly => new EttinEncoder(config),
        ModelArchitecture.EttinDecoder => new EttinDecoder(config),
        _ => throw new ArgumentOutOfRangeException(nameof(config), config.Architecture, "unknown architecture"),
    };
}
