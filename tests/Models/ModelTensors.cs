using TorchSharp;
using static TorchSharp.torch;

namespace Training.Tests.Models;

internal static class ModelTensors
{
    /// <summary>[rows.Length, rows[0].Length] int64 from token rows of equal length.</summary>
    public static Tensor Tokens(params long[][] rows)
    {
        var width = rows[0].Length;
        if (rows.Any(r => r.Length != width))
            throw new ArgumentException("Token rows must have equal length.");
        return tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, width]);
    }

    public static double MaxAbsDifference(Tensor a, Tensor b) => (a - b).abs().max().to(ScalarType.Float64).item<double>();
}
