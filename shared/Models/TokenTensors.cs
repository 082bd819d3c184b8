using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>Shape/dtype checks for token-id inputs, so misuse fails with a message instead of deep in libtorch.</summary>
internal static class TokenTensors
{
    public static void RequireBatch(Tensor tokens, string name)
    {
        if (tokens.dim() != 2 || tokens.dtype != ScalarType.Int64)
            throw new ArgumentException(
                $"{name} must be an int64 tensor [batch, length], got {tokens.dtype} [{string.Join(", ", tokens.shape)}].", name);
        if (tokens.shape[0] == 0 || tokens.shape[1] == 0)
            throw new ArgumentException($"{name} must not be empty, got [{string.Join(", ", tokens.shape)}].", name);
    }
}
