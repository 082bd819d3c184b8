using System.Numerics;
using System.Runtime.InteropServices;

namespace Training.Shared.Collectives;

/// <summary>bfloat16 is the upper half of a float32: widening is exact, narrowing rounds to nearest even.</summary>
public static class BFloat16Math
{
    /// <summary>The quiet NaN that PyTorch produces for any NaN input, so converted buffers match torch bit for bit.</summary>
    public const ushort QuietNaN = 0x7FC0;

    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    public static ushort FromSingle(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) return QuietNaN;
        // Adding 0x7FFF plus the lowest kept bit rounds ties to the even neighbour; overflow carries into the exponent (-> inf).
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    /// <summary>Widens <paramref name="source"/> (bfloat16 bits) into <paramref name="destination"/> (same length).</summary>
    public static void Widen(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length != source.Length) throw new ArgumentException("source and destination lengths differ");
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var step = Vector<ushort>.Count;
            for (; i + step <= source.Length; i += step)
            {
                Vector.Widen(new Vector<ushort>(source.Slice(i, step)), out var low, out var high);
                (low << 16).CopyTo(bits.Slice(i, step / 2));
                (high << 16).CopyTo(bits.Slice(i + step / 2, step / 2));
            }
        }
        for (; i < source.Length; i++) bits[i] = (uint)source[i] << 16;
    }

    /// <summary>Rounds <paramref name="source"/> to bfloat16 bits in <paramref name="destination"/> (same length).</summary>
    public static void Narrow(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length != source.Length) throw new ArgumentException("source and destination lengths differ");
        var bits = MemoryMarshal.Cast<float, uint>(source);
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var step = Vector<ushort>.Count;
            var half = step / 2;
            for (; i + step <= source.Length; i += step)
            {
                var packed = Vector.Narrow(RoundedHighHalves(new Vector<uint>(bits.Slice(i, half))),
                                           RoundedHighHalves(new Vector<uint>(bits.Slice(i + half, half))));
                packed.CopyTo(destination.Slice(i, step));
            }
        }
        for (; i < source.Length; i++) destination[i] = FromSingle(source[i]);
    }

    // Same rule as FromSingle, lane by lane: each uint lane ends up holding its 16 result bits.
    private static Vector<uint> RoundedHighHalves(Vector<uint> bits)
    {
        var rounded = (bits + new Vector<uint>(0x7FFF) + ((bits >> 16) & Vector<uint>.One)) >> 16;
        var isNaN = Vector.GreaterThan(bits & new Vector<uint>(0x7FFF_FFFF), new Vector<uint>(0x7F80_0000));
        return Vector.ConditionalSelect(isNaN, new Vector<uint>(QuietNaN), rounded);
    }
}
