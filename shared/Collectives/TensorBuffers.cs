using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Training.Shared.Collectives;

/// <summary>How collectives reach a TorchSharp tensor's memory.</summary>
public static class TensorBuffers
{
    public static ElementType ElementTypeOf(Tensor tensor) => tensor.dtype switch
    {
        ScalarType.Float32 => ElementType.Float32,
        ScalarType.BFloat16 => ElementType.BFloat16,
        _ => throw new ArgumentException($"all-reduce supports float32 and bfloat16 tensors, not {tensor.dtype}", nameof(tensor)),
    };

    /// <summary>
    /// The address of the tensor's first element: host memory for CPU tensors, device memory for CUDA tensors.
    /// TorchSharp has no public data_ptr, so this calls the same LibTorchSharp export its <c>bytes</c> property uses.
    /// </summary>
    public static IntPtr DataPointer(Tensor tensor)
    {
        if (tensor.numel() == 0) return IntPtr.Zero;
        var pointer = THSTensor_data(tensor.Handle);
        if (pointer == IntPtr.Zero) throw new InvalidOperationException($"LibTorchSharp returned no data pointer for a {tensor.dtype} tensor on {tensor.device}");
        return pointer;
    }

    /// <summary>Sums a tensor with a group that works on host bytes: CPU tensors in their own memory, others through a host copy.</summary>
    internal static void AllReduceOnHost(ICollectiveGroup group, Tensor tensor)
    {
        var type = ElementTypeOf(tensor);
        if (tensor.device_type == DeviceType.CPU)
        {
            if (!tensor.is_contiguous()) throw new ArgumentException("all-reduce needs a contiguous tensor (call .contiguous() first)", nameof(tensor));
            group.AllReduceSum(tensor.numel() == 0 ? Span<byte>.Empty : tensor.bytes, type);
            return;
        }
        using var detached = tensor.detach();
        using var host = detached.cpu();
        using var contiguousHost = host.contiguous();
        group.AllReduceSum(contiguousHost.numel() == 0 ? Span<byte>.Empty : contiguousHost.bytes, type);
        using (no_grad())
        {
            tensor.copy_(contiguousHost);
        }
    }

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr tensor);
}
