namespace Training.Shared.Models;

/// <summary>What every model of this project exposes to trainers, objectives and generators.</summary>
public interface ILanguageModel
{
    TransformerConfig Config { get; }

    /// <summary>Token embedding [VocabSize, DModel]; with tied embeddings also the LM head.</summary>
    TorchSharp.torch.Tensor EmbeddingWeight { get; }
}
