using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// GPT input: token embedding plus a learned embedding per position (0 .. MaxPositions-1), then dropout.
/// Width is the model's d_model, or 2 * d_model for parallel-gpt (whose two halves feed its two branches).
/// </summary>
public sealed class GptEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Embedding tokens;
    private readonly Embedding positions;
    private readonly Dropout dropout;
    private readonly int maxPositions;

    public GptEmbedding(string name, int vocabSize, int maxPositions, int width, double dropoutRate) : base(name)
    {
        this.maxPositions = maxPositions;
        tokens = nn.Embedding(vocabSize, width);
        positions = nn.Embedding(maxPositions, width);
        dropout = nn.Dropout(dropoutRate);
        RegisterComponents();
    }

    /// <summary>[V, width]</summary>
    public Tensor TokenWeight => tokens.weight ?? throw new InvalidOperationException("The token embedding has no weight (disposed model?).");

    /// <param name="ids">[B, T] int64, T at most MaxPositions</param>
    /// <returns>[B, T, width]</returns>
    public override Tensor forward(Tensor ids)
    {
        var length = ids.shape[1];
        if (length > maxPositions)
            throw new ArgumentException(
                $"The input has {length} positions but the model learned {maxPositions} (model.max_positions); shorten the input or raise max_positions.",
                nameof(ids));
        var positionIds = arange(0, length, dtype: ScalarType.Int64, device: ids.device);
        return dropout.forward(tokens.forward(ids) + positions.forward(positionIds));
    }
}
