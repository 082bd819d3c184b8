namespace Training.Shared.Models;

/// <summary>One released Ettin size (SPEC.md section 2): heads of width 64, GeGLU intermediate width, tied 50,368 vocabulary.</summary>
/// <param name="PublishedMillions">The parameter count the paper's table gives (vocab 50,368, tied), in millions.</param>
public sealed record EttinPreset(string Name, int Layers, int Hidden, int Intermediate, int Heads, double PublishedMillions)
{
    public const int HeadDim = 64;
    public const int Vocabulary = 50_368;

    /// <summary>The encoder of this size at vocabulary <paramref name="vocabSize"/> (the decoder twin differs only in Architecture).</summary>
    public TransformerConfig Config(int vocabSize = Vocabulary, ModelArchitecture architecture = ModelArchitecture.EncoderOnly) => new(
        VocabSize: vocabSize, DModel: Hidden,
        EncoderLayers: architecture == ModelArchitecture.EncoderOnly ? Layers : 0,
        DecoderLayers: architecture == ModelArchitecture.EncoderOnly ? 0 : Layers,
        Heads: Heads, KvHeads: Heads, HeadDim: HeadDim, FfnDim: Intermediate, Mlp: MlpKind.GeGlu, Dropout: 0.0,
        RopeTheta: 10_000, NormEps: 1e-5)
    {
        Architecture = architecture,
    };
}

/// <summary>The Ettin sizes selectable by name in an experiment (<c>model.preset: ettin-17m</c>).</summary>
public static class EttinPresets
{
    public static IReadOnlyList<EttinPreset> All { get; } =
    [
        new("ettin-17m", Layers: 7, Hidden: 256, Intermediate: 384, Heads: 4, PublishedMillions: 16.9),
        new("ettin-32m", Layers: 10, Hidden: 384, Intermediate: 576, Heads: 6, PublishedMillions: 32.0),
        new("ettin-68m", Layers: 19, Hidden: 512, Intermediate: 768, Heads: 8, PublishedMillions: 68.4),
        new("ettin-150m", Layers: 22, Hidden: 768, Intermediate: 1152, Heads: 12, PublishedMillions: 149.6),
        new("ettin-400m", Layers: 28, Hidden: 1024, Intermediate: 2624, Heads: 16, PublishedMillions: 395.8),
        new("ettin-1b", Layers: 28, Hidden: 1792, Intermediate: 3840, Heads: 28, PublishedMillions: 1031.3),
    ];

    public static IReadOnlyList<string> Names { get; } = All.Select(p => p.Name).ToList();

    public static EttinPreset Get(string name) =>
        All.FirstOrDefault(p => p.Name == name)
        ?? throw new ArgumentException($"Unknown Ettin preset '{name}'. Allowed: {string.Join(", ", Names)}.", nameof(name));
}
