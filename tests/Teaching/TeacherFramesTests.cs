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
        Assert.That(Assert.ThrowsAsync<InvalidDataException>(() => Read([2, 0, 0, 0, 3, 1]))!.Message, Does.Contain("version 3"));
        Assert.That(Assert.ThrowsAsync<InvalidDataException>(() => Read([2, 0, 0, 0, TeacherFrames.ProtocolVersion, 99]))!.Message, Does.Contain("unknown teacher message type 99"));
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

    /// <summary>An encoder-decoder request: three encoder rows, their decoder rows, and positions within the decoder rows.</summary>
    private static TeacherScoreRequest EncoderDecoderRequest(AttentionModules attention = AttentionModules.DecoderSelf | AttentionModules.Cross) =>
        new(4, [[5, 6, 7], [8, 9], [1, 2, 3, 4]], [0, 0, 1], [2, 3, 1], TeacherTransport.Full, 0, 2f)
        {
            DecoderRows = [[1, 10], [1, 11, 12], [1, 13]],
            Attention = attention,
        };

    private static AttentionVectors Vectors(AttentionModules module, int batch, int queries, int keys, int dim) =>
        new(module, batch, queries, keys, dim,
            Enumerable.Range(0, batch * queries * dim).Select(i => MathF.Sin(i)).ToArray(),
            Enumerable.Range(0, batch * keys * dim).Select(i => MathF.Cos(i)).ToArray(),
            Enumerable.Range(0, batch * keys * dim).Select(i => i * 0.5f).ToArray());

    [Test]
    public async Task EncoderDecoderRequestAndScoresWithAttention_RoundTrip()
    {
        var request = EncoderDecoderRequest();
        var decoded = TeacherFrames.DecodeRequest((await RoundTrip(TeacherFrames.EncodeRequest(request), TeacherMessageType.ScoreRequest)).Body.Span);
        Assert.Multiple(() =>
        {
            Assert.That(decoded.Form, Is.EqualTo(TeacherForm.EncoderDecoder));
            Assert.That(decoded.Rows, Is.EqualTo(request.Rows));
            Assert.That(decoded.DecoderRows, Is.EqualTo(request.DecoderRows));
            Assert.That(decoded.Attention, Is.EqualTo(request.Attention));
            Assert.That((decoded.ScoreFrom, decoded.ScoreCount), Is.EqualTo((request.ScoreFrom, request.ScoreCount)));
        });
        var causal = TeacherFrames.DecodeRequest((await RoundTrip(TeacherFrames.EncodeRequest(TestScorer.Request(2, 3)), TeacherMessageType.ScoreRequest)).Body.Span);
        Assert.That((causal.Form, causal.DecoderRows, causal.Attention), Is.EqualTo((TeacherForm.Causal, (IReadOnlyList<long[]>?)null, AttentionModules.None)));

        var scores = new TeacherScores(4, 3, TeacherTransport.Full, 0, new float[6 * 3], null, null)
        {
            Attention = [Vectors(AttentionModules.DecoderSelf, 3, 3, 3, 8), Vectors(AttentionModules.Cross, 3, 3, 4, 8)],
        };
        var back = TeacherFrames.DecodeScores((await RoundTrip(TeacherFrames.EncodeScores(scores), TeacherMessageType.Scores)).Body.Span);
        Assert.That(back.Attention.Select(a => (a.Module, a.Batch, a.QueryLength, a.KeyLength, a.Dim)),
            Is.EqualTo(scores.Attention.Select(a => (a.Module, a.Batch, a.QueryLength, a.KeyLength, a.Dim))));
        for (var i = 0; i < 2; i++)
        {
            AssertBits(back.Attention[i].Queries, scores.Attention[i].Queries);
            AssertBits(back.Attention[i].Keys, scores.Attention[i].Keys);
            AssertBits(back.Attention[i].Values, scores.Attention[i].Values);
        }
        var hello = TeacherFrames.DecodeHello((await RoundTrip(TeacherFrames.EncodeHello("byte", TeacherForm.EncoderDecoder), TeacherMessageType.Hello)).Body.Span);
        Assert.That(hello, Is.EqualTo(new TeacherHello("byte", TeacherForm.EncoderDecoder)));
    }

    [Test]
    public void MalformedEncoderDecoderFramesAndAttention_AreRejected()
    {
        // Positions index the decoder rows: row 2's decoder row has 2 tokens, so position 1 + 2 is past it.
        Assert.That(Assert.Throws<ArgumentException>(() => TeacherFrames.EncodeRequest(EncoderDecoderRequest() with { ScoreCount = [2, 3, 2] }))!.Message,
            Does.Contain("outside the row"));
        Assert.That(Assert.Throws<ArgumentException>(() => TeacherFrames.EncodeRequest(TestScorer.Request(1, 2) with { Attention = AttentionModules.Cross }))!.Message,
            Does.Contain("encoder-decoder teacher only"));

        var body = Body(TeacherFrames.EncodeRequest(EncoderDecoderRequest()));
        // Layout: 21 header bytes, 3 x 12 row headers, 9 encoder tokens x 8, then form and attention.
        var formAt = 21 + 36 + 72;
        var unknownForm = (byte[])body.Clone();
        unknownForm[formAt] = 9;
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(unknownForm))!.Message, Does.Contain("unknown teacher form 9"));
        var unknownModule = (byte[])body.Clone();
        unknownModule[formAt + 1] = 8;
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(unknownModule))!.Message, Does.Contain("unknown attention modules 8"));
        var longDecoderRow = (byte[])body.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(longDecoderRow.AsSpan(formAt + 2), 1_000_000);
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(longDecoderRow))!.Message, Does.Contain("too short"));
        var shortDecoderRow = (byte[])body.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(shortDecoderRow.AsSpan(formAt + 2), 1);   // row 0 now 1 decoder token, 2 scored
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeRequest(shortDecoderRow[..^8]))!.Message, Does.Contain("outside the row"));

        var scores = new TeacherScores(4, 3, TeacherTransport.Full, 0, new float[6 * 3], null, null) { Attention = [Vectors(AttentionModules.Cross, 3, 3, 4, 8)] };
        var encoded = Body(TeacherFrames.EncodeScores(scores));
        var moduleAt = 21 + 4 * 18 + 1;
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeScores(encoded[..^4]))!.Message, Does.Contain("too short"));
        var huge = (byte[])encoded.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(huge.AsSpan(moduleAt + 1 + 12), 1 << 30);  // dim
        var before = GC.GetTotalAllocatedBytes(precise: true);
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeScores(huge))!.Message, Does.Contain("too short"));
        Assert.That(GC.GetTotalAllocatedBytes(precise: true) - before, Is.LessThan(1 << 20), "the claimed vectors were never allocated");
        var notOne = (byte[])encoded.Clone();
        notOne[moduleAt] = (byte)(AttentionModules.Cross | AttentionModules.DecoderSelf);
        Assert.That(Assert.Throws<InvalidDataException>(() => TeacherFrames.DecodeScores(notOne))!.Message, Does.Contain("is not one module"));
        Assert.That(Assert.Throws<ArgumentException>(() => TeacherFrames.EncodeScores(scores with
            {
                Attention = [Vectors(AttentionModules.Cross, 3, 3, 4, 8), Vectors(AttentionModules.Cross, 3, 3, 4, 8)],
            }))!.Message, Does.Contain("appears twice"));
        Assert.That(Assert.Throws<ArgumentException>(() => TeacherFrames.EncodeScores(scores with
            {
                Attention = [Vectors(AttentionModules.Cross, 3, 3, 4, 8) with { Dim = 7 }],
            }))!.Message, Does.Contain("do not match"));
    }
}
