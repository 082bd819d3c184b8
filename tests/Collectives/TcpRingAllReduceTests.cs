using System.Runtime.InteropServices;
using NUnit.Framework;
using Training.Shared.Collectives;
using static TorchSharp.torch;

namespace Training.Tests.Collectives;

public class TcpRingAllReduceTests
{
    private static IEnumerable<TestCaseData> Worlds() =>
        from world in new[] { 1, 2, 3, 4 }
        from type in new[] { ElementType.Float32, ElementType.BFloat16 }
        select new TestCaseData(world, type);

    [TestCaseSource(nameof(Worlds))]
    public void AllReduceSum_RandomBuffersOfAwkwardSizes_EveryRankHoldsTheSumBitForBit(int world, ElementType type)
    {
        var groups = Ring.Form(world);
        try
        {
            foreach (var elements in new[] { 0, 1, 3, world - 1, 1_000_003 }.Distinct())
            {
                var random = new Random(1000 * world + elements);
                var inputs = Enumerable.Range(0, world).Select(_ => RandomBuffer(random, elements, type)).ToArray();
                var buffers = inputs.Select(b => b.ToArray()).ToArray();

                Ring.OnEveryRank(world, rank => groups[rank].AllReduceSum(buffers[rank], type));

                for (var rank = 1; rank < world; rank++)
                    Assert.That(buffers[rank].AsSpan().SequenceEqual(buffers[0]), Is.True, $"W={world} N={elements}: rank {rank} is bit-identical to rank 0");
                AssertCloseToExactSum(inputs, buffers[0], type, $"W={world} N={elements} {type}");

                // The same inputs again give the same bits: the sum order is fixed, not a race.
                var again = inputs.Select(b => b.ToArray()).ToArray();
                Ring.OnEveryRank(world, rank => groups[rank].AllReduceSum(again[rank], type));
                Assert.That(again[0].AsSpan().SequenceEqual(buffers[0]), Is.True, $"W={world} N={elements}: repeatable");
            }
        }
        finally
        {
            Ring.DisposeAll(groups);
        }
    }

    [Test]
    public void AllReduceSum_BFloat16_RoundsOnceAfterSummingInFloat32()
    {
        // 1 + 3*2^-10 + 3*2^-10: rounding after each addition would give 1 twice over; one rounding of 1 + 0.75 ulp gives 1 + 2^-7.
        var values = new[] { 1f, 3f / 1024, 3f / 1024 };
        var groups = Ring.Form(3);
        try
        {
            const int elements = 1001;
            var buffers = values.Select(v => MemoryMarshal.AsBytes(Enumerable.Repeat(BFloat16Math.FromSingle(v), elements).ToArray().AsSpan()).ToArray()).ToArray();
            Ring.OnEveryRank(3, rank => groups[rank].AllReduceSum(buffers[rank], ElementType.BFloat16));
            foreach (var buffer in buffers)
                Assert.That(MemoryMarshal.Cast<byte, ushort>(buffer).ToArray().Select(BFloat16Math.ToSingle), Has.All.EqualTo(1f + 1f / 128));
        }
        finally
        {
            Ring.DisposeAll(groups);
        }
    }

    [Test]
    public void AllReduceSum_CpuTensors_SumsFloat32AndBFloat16InPlace()
    {
        using var scope = NewDisposeScope();
        var groups = Ring.Form(2);
        try
        {
            var floats = new[] { arange(0, 10, dtype: ScalarType.Float32), full(10, 0.5f, dtype: ScalarType.Float32) };
            var halves = new[] { full(3, 2f, dtype: ScalarType.BFloat16), full(3, 1.5f, dtype: ScalarType.BFloat16) };
            Ring.OnEveryRank(2, rank =>
            {
                groups[rank].AllReduceSum(floats[rank]);
                groups[rank].AllReduceSum(halves[rank]);
            });
            var expected = arange(0, 10, dtype: ScalarType.Float32) + 0.5f;
            foreach (var t in floats) Assert.That(t.eq(expected).all().item<bool>(), Is.True, t.ToString(TorchSharp.TensorStringStyle.Julia));
            foreach (var t in halves) Assert.That(t.to(ScalarType.Float32).eq(full(3, 3.5f)).all().item<bool>(), Is.True);
            Assert.Throws<ArgumentException>(() => groups[0].AllReduceSum(ones(2, dtype: ScalarType.Int64)));
        }
        finally
        {
            Ring.DisposeAll(groups);
        }
    }

    [Test]
    public void DataPointer_CpuTensor_PointsAtTheTensorsOwnMemory()
    {
        using var scope = NewDisposeScope();
        var t = randn(5, 7);
        var pointer = TensorBuffers.DataPointer(t);

        var read = new byte[t.bytes.Length];
        Marshal.Copy(pointer, read, 0, read.Length);
        Marshal.WriteInt32(pointer, BitConverter.SingleToInt32Bits(42f));

        Assert.That(read, Is.EqualTo(t.bytes.ToArray().Select((b, i) => i < 4 ? read[i] : b)));
        Assert.That(t[0, 0].item<float>(), Is.EqualTo(42f));
    }

    [Test]
    public void Connect_WorldSizeOne_OpensNoSocketsAndLeavesTheBufferAlone()
    {
        using var listener = RingListener.Start();
        // The one endpoint is deliberately not the listener's: a single rank must not dial anything.
        using var group = TcpRing.Connect(listener, 0, [new RingEndpoint("127.0.0.1", 1)], "t000/g1", TimeSpan.FromSeconds(1));
        var buffer = MemoryMarshal.AsBytes(new[] { 1.5f, -2f, 3f }.AsSpan()).ToArray();
        var before = buffer.ToArray();

        group.AllReduceSum(buffer, ElementType.Float32);

        Assert.That(group.WorldSize, Is.EqualTo(1));
        Assert.That(buffer, Is.EqualTo(before));
    }

    [Test]
    public void AllReduceSum_RanksDisagreeOnBufferLength_FailsNamingBothCalls()
    {
        var groups = Ring.Form(2);
        try
        {
            var outcomes = Enumerable.Range(0, 2).Select(rank => Ring.Start(() => groups[rank].AllReduceSum(new byte[rank == 0 ? 40 : 44], ElementType.Float32))).ToArray();
            Task.WaitAll(outcomes);
            var errors = outcomes.Select(o => o.Result.Error).ToArray();
            Assert.That(errors, Has.All.InstanceOf<CollectiveException>());
            Assert.That(errors.Select(e => e!.Message), Has.Some.Contains("40 bytes").And.Contains("44 bytes"));
        }
        finally
        {
            Ring.DisposeAll(groups);
        }
    }

    private static byte[] RandomBuffer(Random random, int elements, ElementType type)
    {
        var values = new float[elements];
        for (var i = 0; i < elements; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * (i % 7 == 0 ? 1000f : 1f);
        if (type == ElementType.Float32) return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        var bits = new ushort[elements];
        BFloat16Math.Narrow(values, bits);
        return MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
    }

    private static float[] Decode(byte[] buffer, ElementType type) => type == ElementType.Float32
        ? MemoryMarshal.Cast<byte, float>(buffer).ToArray()
        : MemoryMarshal.Cast<byte, ushort>(buffer).ToArray().Select(BFloat16Math.ToSingle).ToArray();

    /// <summary>Compares with a float64 sum: float32 rounding error of W-1 additions, plus one bfloat16 rounding for bfloat16.</summary>
    private static void AssertCloseToExactSum(byte[][] inputs, byte[] result, ElementType type, string what)
    {
        var decoded = inputs.Select(b => Decode(b, type)).ToArray();
        var got = Decode(result, type);
        var world = inputs.Length;
        for (var i = 0; i < got.Length; i++)
        {
            double exact = 0, magnitude = 0;
            foreach (var rank in decoded)
            {
                exact += rank[i];
                magnitude += Math.Abs(rank[i]);
            }
            var tolerance = world * Math.Pow(2, -24) * magnitude + (type == ElementType.BFloat16 ? Math.Pow(2, -8) * Math.Abs(exact) : 0);
            if (Math.Abs(got[i] - exact) > tolerance)
                Assert.Fail($"{what}: element {i} is {got[i]}, the exact sum is {exact} (tolerance {tolerance})");
        }
    }
}
