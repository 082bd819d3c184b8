using System.Runtime.InteropServices;
using NUnit.Framework;
using Training.Shared.Collectives;
using static TorchSharp.torch;

namespace Training.Tests.Collectives;

public class BFloat16MathTests
{
    [Test]
    public void Narrow_RandomAndSpecialValues_MatchesTorchRoundingBitForBit()
    {
        using var scope = NewDisposeScope();
        var random = new Random(7);
        var values = Enumerable.Range(0, 10_000).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-130, 128))))
            .Concat([0f, -0f, 1f, float.MaxValue, -float.MaxValue, float.Epsilon, float.PositiveInfinity, float.NegativeInfinity,
                     BitConverter.UInt32BitsToSingle(0x3F80_8000), BitConverter.UInt32BitsToSingle(0x3F81_8000), // ties: to even (down, up)
                     BitConverter.UInt32BitsToSingle(0x7F7F_FFFF), BitConverter.UInt32BitsToSingle(0x3F80_8001)])
            .ToArray();
        var expected = MemoryMarshal.Cast<byte, ushort>(tensor(values).to(ScalarType.BFloat16).bytes).ToArray();

        var vectorised = new ushort[values.Length];
        BFloat16Math.Narrow(values, vectorised);
        var scalar = values.Select(BFloat16Math.FromSingle).ToArray();

        Assert.That(vectorised, Is.EqualTo(expected));
        Assert.That(scalar, Is.EqualTo(expected));
        // Torch's own kernels disagree on NaN bits (0x7FC0 scalar, 0xFFFF vectorised); any NaN must stay a NaN.
        var nans = new ushort[40];
        BFloat16Math.Narrow(Enumerable.Repeat(float.NaN, 40).ToArray(), nans);
        Assert.That(nans.Select(BFloat16Math.ToSingle), Has.All.NaN);
    }

    [Test]
    public void Widen_EveryBitPattern_IsExactAndRoundTrips()
    {
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var widened = new float[all.Length];
        BFloat16Math.Widen(all, widened);
        var back = new ushort[all.Length];
        BFloat16Math.Narrow(widened, back);
        for (var i = 0; i < all.Length; i++)
        {
            Assert.That(BitConverter.SingleToUInt32Bits(widened[i]), Is.EqualTo((uint)i << 16), $"bits 0x{i:X4}");
            var isNaN = float.IsNaN(widened[i]);
            Assert.That(back[i], Is.EqualTo(isNaN ? BFloat16Math.QuietNaN : (ushort)i), $"bits 0x{i:X4}");
        }
    }
}
