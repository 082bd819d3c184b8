using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>What every model of this project exposes to trainers, objectives and generators.</summary>
public interface ILanguageModel
{
    TransformerConfig Config { get; }

    /// <summary>Token embedding [VocabSize, width]; with tied embeddings also the LM head.</summary>
    Tensor EmbeddingWeight { get; }
}

/// <summary>A model that predicts each next token from the tokens before it (what causal LM training needs).</summary>
public interface ICausalLanguageModel : ILanguageModel
{
    /// <param name="tokens">[B, T] int64</param>
    /// <returns>logits [B, T, V]: position t predicts token t + 1</returns>
    Tensor forward(Tensor tokens);
}

/// <summary>
/// A causal model that can stop before its LM head: with a tied head (logits = hidden x EmbeddingWeight^T) the objective
/// takes the loss from these hidden states in chunks (ChunkedCrossEntropy, a layer above) and never holds the
/// full [B, T, V] logits, which dominate a large vocabulary's step.
/// </summary>
public interface ITiedHeadCausalModel : ICausalLanguageModel
{
    /// <summary>Whether the LM head is <see cref="ILanguageModel.EmbeddingWeight"/> (no separate head matrix).</summary>
    bool HeadIsTied { get; }

    /// <param name="tokens">[B, T] int64</param>
    /// <returns>the final (normalised) hidden states [B, T, d] that the head turns into logits</returns>
    Tensor Hidden(Tensor tokens);
}

/// <summary>A model that reads the whole sequence in both directions (what masked LM training needs).</summary>
public interface IMaskedLanguageModel : ILanguageModel
{
    /// <param name="tokens">[B, T] int64, some replaced by the mask id</param>
    /// <returns>logits [B, T, V]: position t predicts the original token t</returns>
    Tensor forward(Tensor tokens);
}
