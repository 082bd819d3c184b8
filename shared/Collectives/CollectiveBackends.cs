using System.Globalization;

namespace Training.Shared.Collectives;

public enum CollectiveBackendKind
{
    /// <summary>Ring all-reduce over TCP between the workers' CPUs (<see cref="TcpRing"/>).</summary>
    TcpRing,

    /// <summary>NCCL on CUDA devices (<see cref="NcclGroup"/>).</summary>
    Nccl,
}

/// <summary>Which collective backend a rank on a device uses, and on which CUDA device (NCCL only).</summary>
public sealed record CollectiveBackend(CollectiveBackendKind Kind, int? CudaDevice)
{
    public override string ToString() => Kind == CollectiveBackendKind.Nccl ? $"nccl (cuda:{CudaDevice})" : "tcp-ring (cpu)";
}

public static class CollectiveBackends
{
    /// <summary>"cpu" -> TCP ring; "cuda" (device 0) or "cuda:N" -> NCCL on device N. Loads nothing: availability shows at group creation.</summary>
    public static CollectiveBackend For(string device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var name = device.Trim().ToLowerInvariant();
        if (name == "cpu") return new CollectiveBackend(CollectiveBackendKind.TcpRing, null);
        if (name == "cuda") return new CollectiveBackend(CollectiveBackendKind.Nccl, 0);
        if (name.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(name["cuda:".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            return new CollectiveBackend(CollectiveBackendKind.Nccl, index);
        throw new ArgumentException($"device '{device}' has no collective backend: use 'cpu' (TCP ring) or 'cuda' / 'cuda:N' (NCCL)", nameof(device));
    }
}
