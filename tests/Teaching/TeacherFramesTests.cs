using System.Buffers.Binary;
using NUnit.Framework;
using Training.Shared.Teaching;

namespace Training.Tests.Teaching;

public class TeacherFramesTests
{
    private const int Limit = 64 << 20;

    private static async Task<TeacherFrame> RoundTrip(byte[] frame, TeacherMessageType expected)
    {
        using var stream = new MemoryStream();
        await TeacherFrames.WriteFrameAsync(stream, frame);
        stream.Position = 0;
        var read = await TeacherFrames.ReadFrameAsync(stream, Limit);
        Assert.That(read, Is.Not.Null);
        Assert.That(read!.Value.Type, Is.EqualTo(expected));
        Assert.That(await TeacherFrames.ReadFrameAsync(stream, Limit), Is.Null, "a clean end after the frame");
        return read.Value;
    }

    private static Task<TeacherFrame?> Read(byte[] bytes, int limit = Limit) => TeacherFrames.ReadFrameAsync(new MemoryStream(bytes), limit).AsTask();

    internal static void AssertBits(float[]? actual, float[]? expected)
    {
        Assert.That(actual is null, Is.EqualTo(expected is null));
        if (actual is null) return;
        Assert.That(actual.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(expected!.Select(BitConverter.SingleToInt32Bits)));
    }

    [Test]
    public async Task HelloWelcomeError_RoundTrip()
    {
        var hello = await RoundTrip(TeacherFrames.EncodeHello("cl100k_base/ü"), TeacherMessageType.Hello);
        Assert.That(TeacherFrames.DecodeHello(hello.Body.Span).TokenizerId, Is.EqualTo("cl100k_base/ü"));
        var welcome = await RoundTrip(TeacherFrames.EncodeWelcome(100_277, "cl100k_base"), TeacherMessageType.Welcome);
        Assert.That(TeacherFrames.DecodeWelcome(welcome.Body.Span), Is.EqualTo(new TeacherWelcome(100_277, "cl100k_base")));
        var error = await RoundTrip(TeacherFrames.EncodeError(-1, "no"), TeacherMessageType.Error);
        Assert.That(TeacherFrames.DecodeError(error.Body.Span), Is.EqualTo(new TeacherError(-1, "no")));
    }

    [Test]
    public async Task ScoreRequest_RoundTrip()
    {
        var request = TestScorer.Request(42, 3) with { Temperature = 0.7f };
        var read = await RoundTrip(TeacherFrames.EncodeRequest(request), TeacherMessageType.ScoreRequest);
        var decoded = TeacherFrames.DecodeRequest(read.Body.Span);
        Assert.That(decoded.RequestId, Is.EqualTo(42));
        Assert.That(decoded.Rows, Is.EqualTo(request.Rows));
        Assert.That(decoded.ScoreFrom, Is.EqualTo(request.ScoreFrom));
        Assert.That(decoded.ScoreCount, Is.EqualTo(request.ScoreCount));
        Assert.That((decoded.Transport, decoded.TopK, decoded.Temperature), Is.EqualTo((request.Transport, request.TopK, request.Temperature)));
    }

    [Test]
    public async Task FullScores_OfAMillionFloats_RoundTripBitForBit()
    {
        var values = new float[1_000_000];
        for (var i = 0; i < values.Length; i++) values[i] = -MathF.Abs(MathF.Sin(i)) * 20 - i * 1e-7f;
        values[7] = float.NegativeInfinity;
        var scores = new TeacherScores(9, 1000, TeacherTransport.Full, 0, values, null, null);
        var read = await RoundTrip(TeacherFrames.EncodeScores(scores), TeacherMessageType.Scores);
        var decoded = TeacherFrames.DecodeScores(read.Body.Span);
        Assert.That((decoded.RequestId, decoded.Vocab, decoded.Transport, decoded.K), Is.EqualTo((9L, 1000, TeacherTransport.Full, 0)));
        AssertBits(decoded.Values, values);
        Assert.That(decoded.Indices, Is.Null);
        Assert.That(decoded.Tail, Is.Null);
    }

    [Test]
    public async Task TopKScores_RoundTrip()
    {
        var scores = new TestScorer().Score(TestScorer.Request(5, 1, TeacherTransport.TopK, topK: 4));
        var decoded = TeacherFrames.DecodeScores((await RoundTrip(TeacherFrames.EncodeScores(scores), TeacherMessageType.Scores)).Body.Span);
        Assert.That((decoded.RequestId, decoded.K, decoded.Transport), Is.EqualTo((5L, 4, TeacherTransport.TopK)));
        AssertBits(decoded.Values, scores.Values);
        AssertBits(decoded.Tail, scores.Tail);
        Assert.That(decoded.Indices, Is.EqualTo(scores.Indices));
    }

    [Test]
    public void OversizedLengthPrefix_IsRejectedBeforeAllocating()
    {
        var header = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(header, int.MaxValue);
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var error = Assert.ThrowsAsync<InvalidDataException>(() => Read(header, 1 << 20));
        Assert.That(GC.GetTotalAllocatedBytes(precise: true) - before, Is.LessThan(1 << 20), "the 2 GiB frame was never allocated");
        Assert.That(error!.Message, Does.Contain("exceeds the limit"));
    }

    [Test]
    public void MalformedFrames_AreRejectedWithAReason()
    {
        Assert.That(Assert.ThrowsAsync<InvalidDataException>(() => Read([1, 0, 0, 0, 1]))!.Message, Does.Contain("too small"));
        Assert.That(Assert.ThrowsAsync<InvalidDataException>(() => Read([100, 0, 0, 0, 1, 1, 0]))!.Message, Does.Contain("truncated"));
        Assert.That(Assert.ThrowsAsync<InvalidDataException>(() => Read([100, 0]))!.Message, Does.Contain("truncated"));
        Assert.That(Assert.ThrowsAsync<InvalidDataException>(() => Read([2, 0, 0, 0, 2, 1]))!.Message, Does.Contain("version 2"));
        Assert.That(Assert.ThrowsAsync<InvalidDataException>(() => Read([2, 0, 0, 0, 1, 99]))!.Message, Does.Contain("unknown teacher message type 99"));
    }

    /// <summary>The body of an encoded frame, to corrupt.</summary>
    private static byte[] Body(byte[] frame) => frame[(TeacherFrames.HeaderBytes + 2)..];

    [Test]
    public void InconsistentCounts_AreRejected()
    {
        var request = Body(TeacherFrames.EncodeRequest(TestScorer.Request(1, 2)));
        // Layout: id 8, transport 1, topK 4, temperature 4, rows 4 = 21; then per row length, from, count.
        var moreRows = (byte[])request.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(moreRows.AsSpan(17), 1000);
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(moreRows))!.Message, Does.Contain("too short"));
        var negative = (byte[])request.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(negative.AsSpan(17), -1);
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(negative))!.Message, Does.Contain("negative"));
        var outOfRow = (byte[])request.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(outOfRow.AsSpan(29), 100); // row 0 ScoreCount
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(outOfRow))!.Message, Does.Contain("outside the row"));
        var negativeFrom = (byte[])request.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(negativeFrom.AsSpan(25), -3); // row 0 ScoreFrom
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(negativeFrom))!.Message, Does.Contain("outside the row"));
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest([.. request, 0]))!.Message, Does.Contain("too long"));
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(request[..^1]))!.Message, Does.Contain("too short"));

        var scores = Body(TeacherFrames.EncodeScores(new TestScorer().Score(TestScorer.Request(1, 2))));
        // Layout: id 8, vocab 4, transport 1, k 4, positions 4 = 21.
        var morePositions = (byte[])scores.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(morePositions.AsSpan(17), 1_000_000_000);
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeScores(morePositions))!.Message, Does.Contain("too short"));
        var bigK = (byte[])scores.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(bigK.AsSpan(13), 51);
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeScores(bigK))!.Message, Does.Contain("outside 1..50"));
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeScores([.. scores, 1, 2, 3, 4]))!.Message, Does.Contain("too long"));
        var hello = Body(TeacherFrames.EncodeHello("abc"));
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeHello(hello[..^1]))!.Message, Does.Contain("too short"));
    }

    [Test]
    public void Encoders_RejectARequestWhoseCountsDisagree()
    {
        var request = TestScorer.Request(1, 2);
        Assert.Throws<ArgumentException>(() => TeacherFrames.EncodeRequest(request with { ScoreCount = [1] }));
        Assert.Throws<ArgumentException>(() => TeacherFrames.EncodeRequest(request with { ScoreFrom = [0, 0, 100] }));
        Assert.Throws<ArgumentException>(() => TeacherFrames.EncodeScores(new TeacherScores(1, 10, TeacherTransport.Full, 0, new float[15], null, null)));
    }
}
