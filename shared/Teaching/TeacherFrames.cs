// Wire format of the teacher stream (protocol version 2). Everything little-endian.
//
//   frame    = int32 payloadLength | payload            (2 <= payloadLength <= TeacherStreamLimits.MaxFrameBytes)
//   payload  = uint8 version (2) | uint8 type | body
//   string   = int32 byteLength (0..MaxStringBytes) | UTF-8 bytes
//
//   type 1 Hello        (student -> teacher)  string tokenizerId | uint8 form (1 causal, 2 encoder-decoder)
//   type 2 Welcome      (teacher -> student)  int32 vocab (> 0) | string tokenizerId | uint8 form
//   type 3 ScoreRequest (student -> teacher)  int64 requestId | uint8 transport | int32 topK | float32 temperature
//                                             | int32 rowCount | rowCount x (int32 length | int32 scoreFrom | int32 scoreCount)
//                                             | sum(length) x int64 token id        (rows concatenated in order)
//                                             | uint8 form | uint8 attention modules (flags; 0 unless encoder-decoder)
//                                             | encoder-decoder only: rowCount x int32 decoderLength | sum x int64 token id
//                                               (then the rows above are the encoder inputs and the score positions
//                                               index the decoder rows)
//   type 4 Scores       (teacher -> student)  int64 requestId | int32 vocab | uint8 transport | int32 k | int32 positions (N)
//                                             | Full: N*vocab float32 log-probs
//                                             | TopK: N*k float32 log-probs | N*k int32 token ids | N float32 tail log-mass
//                                             | uint8 moduleCount | moduleCount x (uint8 module | int32 batch | int32 queryLength
//                                               | int32 keyLength | int32 dim | float32 queries [batch*queryLength*dim]
//                                               | float32 keys [batch*keyLength*dim] | float32 values [batch*keyLength*dim])
//   type 5 Error        (teacher -> student)  int64 requestId (-1: the connection, e.g. a refused handshake) | string message
//
// A session: the student sends Hello; the teacher answers Welcome, or Error and closes. Then the student sends any number
// of ScoreRequests without waiting (pipelined); each is answered by exactly one Scores or Error with the same requestId.
// Float arrays travel as raw float32 bytes, copied in bulk (no per-element conversion on little-endian machines).
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Training.Shared.Teaching;

/// <summary>The kind of a frame on the teacher stream; the byte after the protocol version.</summary>
public enum TeacherMessageType : byte
{
    Hello = 1,
    Welcome = 2,
    ScoreRequest = 3,
    Scores = 4,
    Error = 5,
}

/// <summary>One received frame: its type and body (the payload after version and type).</summary>
public readonly record struct TeacherFrame(TeacherMessageType Type, ReadOnlyMemory<byte> Body);

/// <summary>Hello body: the student's tokenizer and the form it will ask in.</summary>
public sealed record TeacherHello(string TokenizerId, TeacherForm Form = TeacherForm.Causal);

/// <summary>The teacher's answer to a good Hello: what the student needs to check its own vocabulary against.</summary>
public sealed record TeacherWelcome(int Vocab, string TokenizerId, TeacherForm Form = TeacherForm.Causal);

/// <summary>An Error body: the request it answers (-1 for the connection itself) and the teacher's message.</summary>
public sealed record TeacherError(long RequestId, string Message);

/// <summary>
/// Encodes and decodes the frames of the teacher stream (format at the top of this file). Decoders check every count
/// against the bytes actually present before allocating, so a hostile or corrupt peer costs an exception, never memory.
/// </summary>
public static class TeacherFrames
{
    public const byte ProtocolVersion = 2;
    public const int HeaderBytes = 4;
    public const int MaxStringBytes = 64 << 10;

    // ---- framing ----

    /// <summary>Writes one already encoded frame (from an Encode method) and flushes it.</summary>
    public static async ValueTask WriteFrameAsync(Stream stream, ReadOnlyMemory<byte> frame, CancellationToken cancel = default)
    {
        await stream.WriteAsync(frame, cancel);
        await stream.FlushAsync(cancel);
    }

    /// <summary>
    /// Reads one frame; null when the stream ends cleanly at a frame boundary (the peer closed).
    /// Throws <see cref="InvalidDataException"/> for a length outside 2..maxFrameBytes (checked before allocating),
    /// a frame cut short, an unknown version or an unknown type.
    /// </summary>
    public static async ValueTask<TeacherFrame?> ReadFrameAsync(Stream stream, int maxFrameBytes, CancellationToken cancel = default) =>
        (await ReadFrameAsync(stream, maxFrameBytes, null, cancel))?.Frame;

    /// <summary>
    /// <see cref="ReadFrameAsync(Stream, int, CancellationToken)"/> into a buffer rented from <paramref name="buffers"/>
    /// (a new array when null): the frame's body lies in <c>Rented</c>, which the caller returns to the pool when done.
    /// </summary>
    public static async ValueTask<(TeacherFrame Frame, byte[] Rented)?> ReadFrameAsync(Stream stream, int maxFrameBytes,
        System.Buffers.ArrayPool<byte>? buffers, CancellationToken cancel = default)
    {
        var header = new byte[HeaderBytes];
        var got = await stream.ReadAtLeastAsync(header, HeaderBytes, throwOnEndOfStream: false, cancel);
        if (got == 0) return null;
        if (got < HeaderBytes) throw new InvalidDataException($"truncated frame: the stream ended after {got} of {HeaderBytes} length bytes");
        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (length < 2) throw new InvalidDataException($"frame length {length} is too small (at least 2: version and type)");
        if (length > maxFrameBytes) throw new InvalidDataException($"frame length {length} bytes exceeds the limit of {maxFrameBytes} bytes");
        var payload = buffers?.Rent(length) ?? new byte[length];
        try
        {
            got = await stream.ReadAtLeastAsync(payload.AsMemory(0, length), length, throwOnEndOfStream: false, cancel);
            if (got < length) throw new InvalidDataException($"truncated frame: the stream ended after {got} of {length} payload bytes");
            if (payload[0] != ProtocolVersion) throw new InvalidDataException($"unsupported teacher protocol version {payload[0]} (this build speaks {ProtocolVersion})");
            var type = (TeacherMessageType)payload[1];
            if (!Enum.IsDefined(type)) throw new InvalidDataException($"unknown teacher message type {payload[1]}");
            return (new TeacherFrame(type, payload.AsMemory(2, length - 2)), payload);
        }
        catch
        {
            buffers?.Return(payload);
            throw;
        }
    }

    /// <summary>The request id a Scores body answers (its first field), read without decoding the rest.</summary>
    public static long ScoresRequestId(ReadOnlySpan<byte> body) =>
        body.Length >= 8 ? BinaryPrimitives.ReadInt64LittleEndian(body) : throw new InvalidDataException($"Scores frame is too short: {body.Length} bytes, no request id");

    /// <summary>A frame with its header written, room for a body of this many bytes, and the body's offset.</summary>
    private static byte[] NewFrame(TeacherMessageType type, long bodyBytes, out int offset)
    {
        var payload = bodyBytes + 2;
        if (payload > int.MaxValue - HeaderBytes) throw new InvalidOperationException($"a {type} frame of {payload} bytes is larger than a frame can be (2 GiB)");
        var frame = new byte[HeaderBytes + payload];
        BinaryPrimitives.WriteInt32LittleEndian(frame, (int)payload);
        frame[4] = ProtocolVersion;
        frame[5] = (byte)type;
        offset = HeaderBytes + 2;
        return frame;
    }

    /// <summary>Payload length of an encoded frame (what the receiver checks against its limit).</summary>
    public static int PayloadLength(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadInt32LittleEndian(frame);

    // ---- encoders: each returns a whole frame, length prefix included ----

    public static byte[] EncodeHello(string tokenizerId, TeacherForm form = TeacherForm.Causal)
    {
        var id = Utf8(tokenizerId);
        var frame = NewFrame(TeacherMessageType.Hello, 5 + id.Length, out var at);
        PutString(frame, ref at, id);
        frame[at] = (byte)form;
        return frame;
    }

    public static byte[] EncodeWelcome(int vocab, string tokenizerId, TeacherForm form = TeacherForm.Causal)
    {
        var id = Utf8(tokenizerId);
        var frame = NewFrame(TeacherMessageType.Welcome, 9 + id.Length, out var at);
        PutInt(frame, ref at, vocab);
        PutString(frame, ref at, id);
        frame[at] = (byte)form;
        return frame;
    }

    public static byte[] EncodeError(long requestId, string message)
    {
        var text = Utf8(message);
        var frame = NewFrame(TeacherMessageType.Error, 12 + text.Length, out var at);
        PutLong(frame, ref at, requestId);
        PutString(frame, ref at, text);
        return frame;
    }

    /// <summary>Encodes a request; checks its shape (counts, row ranges) so a bad caller fails here, not at the teacher.</summary>
    public static byte[] EncodeRequest(TeacherScoreRequest request) => EncodeRequest(request, request.RequestId);

    /// <summary>Encodes a request under another id (the pool numbers requests itself so callers' ids never collide).</summary>
    public static byte[] EncodeRequest(TeacherScoreRequest request, long wireId)
    {
        var rows = request.Rows.Count;
        if (request.ScoreFrom.Length != rows || request.ScoreCount.Length != rows)
            throw new ArgumentException($"{rows} rows need as many ScoreFrom and ScoreCount entries (got {request.ScoreFrom.Length} and {request.ScoreCount.Length})");
        var decoder = request.DecoderRows;
        if (decoder is not null && decoder.Count != rows)
            throw new ArgumentException($"{rows} encoder rows need as many decoder rows (got {decoder.Count})");
        CheckAttention(request.Form, request.Attention, e => new ArgumentException(e));
        long tokens = 0, decoderTokens = 0;
        for (var i = 0; i < rows; i++)
        {
            CheckRange(i, (decoder ?? request.Rows)[i].Length, request.ScoreFrom[i], request.ScoreCount[i], e => new ArgumentException(e));
            tokens += request.Rows[i].Length;
            decoderTokens += decoder?[i].Length ?? 0;
        }
        var decoderBytes = decoder is null ? 0 : 4L * rows + 8 * decoderTokens;
        var frame = NewFrame(TeacherMessageType.ScoreRequest, 23 + 12L * rows + 8 * tokens + decoderBytes, out var at);
        PutLong(frame, ref at, wireId);
        frame[at++] = (byte)request.Transport;
        PutInt(frame, ref at, request.TopK);
        BinaryPrimitives.WriteSingleLittleEndian(frame.AsSpan(at), request.Temperature);
        at += 4;
        PutInt(frame, ref at, rows);
        for (var i = 0; i < rows; i++)
        {
            PutInt(frame, ref at, request.Rows[i].Length);
            PutInt(frame, ref at, request.ScoreFrom[i]);
            PutInt(frame, ref at, request.ScoreCount[i]);
        }
        foreach (var row in request.Rows) PutArray<long>(frame, ref at, row);
        frame[at++] = (byte)request.Form;
        frame[at++] = (byte)request.Attention;
        if (decoder is not null)
        {
            foreach (var row in decoder) PutInt(frame, ref at, row.Length);
            foreach (var row in decoder) PutArray<long>(frame, ref at, row);
        }
        return frame;
    }

    /// <summary>Encodes scores; checks that the array lengths agree with Transport, K and Vocab.</summary>
    public static byte[] EncodeScores(TeacherScores scores)
    {
        var n = CheckScoresShape(scores);
        long body = 22 + 4L * scores.Values.Length + (scores.Transport == TeacherTransport.TopK ? 4L * scores.Indices!.Length + 4L * n : 0)
                    + scores.Attention.Sum(a => 17 + 4L * (a.Queries.Length + a.Keys.Length + a.Values.Length));
        var frame = NewFrame(TeacherMessageType.Scores, body, out var at);
        PutLong(frame, ref at, scores.RequestId);
        PutInt(frame, ref at, scores.Vocab);
        frame[at++] = (byte)scores.Transport;
        PutInt(frame, ref at, scores.K);
        PutInt(frame, ref at, (int)n);
        PutArray<float>(frame, ref at, scores.Values);
        if (scores.Transport == TeacherTransport.TopK)
        {
            PutArray<int>(frame, ref at, scores.Indices!);
            PutArray<float>(frame, ref at, scores.Tail!);
        }
        frame[at++] = (byte)scores.Attention.Count;
        foreach (var a in scores.Attention)
        {
            frame[at++] = (byte)a.Module;
            PutInt(frame, ref at, a.Batch);
            PutInt(frame, ref at, a.QueryLength);
            PutInt(frame, ref at, a.KeyLength);
            PutInt(frame, ref at, a.Dim);
            PutArray<float>(frame, ref at, a.Queries);
            PutArray<float>(frame, ref at, a.Keys);
            PutArray<float>(frame, ref at, a.Values);
        }
        return frame;
    }

    /// <summary>Positions in a scores record; throws <see cref="ArgumentException"/> when its arrays disagree with its header.</summary>
    public static long CheckScoresShape(TeacherScores s)
    {
        if (s.Vocab <= 0) throw new ArgumentException($"vocab {s.Vocab} must be positive");
        CheckModules(s.Attention.Select(a => a.Module), e => new ArgumentException(e));
        foreach (var a in s.Attention)
        {
            if (a.Batch < 0 || a.QueryLength < 0 || a.KeyLength < 0 || a.Dim < 0)
                throw new ArgumentException($"{a.Module} attention: negative shape {a.Batch} x {a.QueryLength}/{a.KeyLength} x {a.Dim}");
            if (a.Queries.Length != (long)a.Batch * a.QueryLength * a.Dim || a.Keys.Length != (long)a.Batch * a.KeyLength * a.Dim
                || a.Values.Length != a.Keys.Length)
                throw new ArgumentException($"{a.Module} attention: {a.Queries.Length}, {a.Keys.Length} and {a.Values.Length} values do not match " +
                                            $"{a.Batch} x {a.QueryLength}/{a.KeyLength} x {a.Dim}");
        }
        switch (s.Transport)
        {
            case TeacherTransport.Full:
                if (s.K != 0 || s.Indices is not null || s.Tail is not null) throw new ArgumentException("full scores carry K = 0 and no indices or tail");
                if (s.Values.Length % s.Vocab != 0) throw new ArgumentException($"{s.Values.Length} full values are not a whole number of {s.Vocab}-token rows");
                return s.Values.Length / s.Vocab;
            case TeacherTransport.TopK:
                if (s.K < 1 || s.K > s.Vocab) throw new ArgumentException($"top-k scores need K in 1..{s.Vocab} (got {s.K})");
                if (s.Indices is null || s.Tail is null) throw new ArgumentException("top-k scores carry indices and a tail");
                if (s.Values.Length % s.K != 0 || s.Indices.Length != s.Values.Length || s.Tail.Length != s.Values.Length / s.K)
                    throw new ArgumentException($"top-k arrays disagree: {s.Values.Length} values, {s.Indices.Length} indices, {s.Tail.Length} tail values for K = {s.K}");
                return s.Tail.Length;
            default:
                throw new ArgumentException($"unknown transport {(byte)s.Transport}");
        }
    }

    // ---- decoders: body = the frame's payload after version and type ----

    public static TeacherHello DecodeHello(ReadOnlySpan<byte> body)
    {
        var r = new Reader(body, "Hello");
        var id = r.String();
        var form = Form(r.Byte(), "Hello");
        r.End();
        return new TeacherHello(id, form);
    }

    public static TeacherWelcome DecodeWelcome(ReadOnlySpan<byte> body)
    {
        var r = new Reader(body, "Welcome");
        var vocab = r.Int();
        if (vocab <= 0) throw new InvalidDataException($"Welcome frame: vocab {vocab} must be positive");
        var id = r.String();
        var form = Form(r.Byte(), "Welcome");
        r.End();
        return new TeacherWelcome(vocab, id, form);
    }

    public static TeacherError DecodeError(ReadOnlySpan<byte> body)
    {
        var r = new Reader(body, "Error");
        var id = r.Long();
        var message = r.String();
        r.End();
        return new TeacherError(id, message);
    }

    public static TeacherScoreRequest DecodeRequest(ReadOnlySpan<byte> body)
    {
        var r = new Reader(body, "ScoreRequest");
        var id = r.Long();
        var transport = (TeacherTransport)r.Byte();
        if (!Enum.IsDefined(transport)) throw new InvalidDataException($"ScoreRequest frame: unknown transport {(byte)transport}");
        var topK = r.Int();
        var temperature = r.Float();
        var rows = r.Count("row count");
        r.Need(12L * rows, $"{rows} row headers");
        var lengths = new int[rows];
        var from = new int[rows];
        var count = new int[rows];
        long tokens = 0;
        for (var i = 0; i < rows; i++)
        {
            lengths[i] = r.Count($"row {i} length");
            from[i] = r.Int();
            count[i] = r.Int();
            tokens += lengths[i];
        }
        r.Need(8 * tokens, $"{tokens} token ids");
        var list = new long[rows][];
        for (var i = 0; i < rows; i++) list[i] = r.Array<long>(lengths[i]);
        var form = Form(r.Byte(), "ScoreRequest");
        var attention = (AttentionModules)r.Byte();
        CheckAttention(form, attention, e => new InvalidDataException($"ScoreRequest frame: {e}"));
        long[][]? decoder = null;
        if (form == TeacherForm.EncoderDecoder)
        {
            r.Need(4L * rows, $"{rows} decoder row lengths");
            var decoderLengths = new int[rows];
            long decoderTokens = 0;
            for (var i = 0; i < rows; i++)
            {
                decoderLengths[i] = r.Count($"decoder row {i} length");
                decoderTokens += decoderLengths[i];
            }
            r.Need(8 * decoderTokens, $"{decoderTokens} decoder token ids");
            decoder = new long[rows][];
            for (var i = 0; i < rows; i++) decoder[i] = r.Array<long>(decoderLengths[i]);
        }
        r.End();
        // Score positions index the rows the teacher predicts: the decoder rows in the encoder-decoder form.
        for (var i = 0; i < rows; i++)
            CheckRange(i, (decoder ?? list)[i].Length, from[i], count[i], e => new InvalidDataException($"ScoreRequest frame: {e}"));
        return new TeacherScoreRequest(id, list, from, count, transport, topK, temperature) { DecoderRows = decoder, Attention = attention };
    }

    public static TeacherScores DecodeScores(ReadOnlySpan<byte> body)
    {
        var r = new Reader(body, "Scores");
        var id = r.Long();
        var vocab = r.Int();
        if (vocab <= 0) throw new InvalidDataException($"Scores frame: vocab {vocab} must be positive");
        var transport = (TeacherTransport)r.Byte();
        var k = r.Count("k");
        var n = r.Count("position count");
        switch (transport)
        {
            case TeacherTransport.Full:
                if (k != 0) throw new InvalidDataException($"Scores frame: full scores carry k = 0 (got {k})");
                r.Need(4L * n * vocab, $"{n} x {vocab} full values");
                var full = r.Array<float>(n * vocab);
                var fullAttention = Attention(ref r);
                r.End();
                return new TeacherScores(id, vocab, transport, 0, full, null, null) { Attention = fullAttention };
            case TeacherTransport.TopK:
                if (k < 1 || k > vocab) throw new InvalidDataException($"Scores frame: k {k} is outside 1..{vocab}");
                r.Need(8L * n * k + 4L * n, $"{n} x {k} top-k values, indices and {n} tail values");
                var values = r.Array<float>(n * k);
                var indices = r.Array<int>(n * k);
                var tail = r.Array<float>(n);
                var topAttention = Attention(ref r);
                r.End();
                return new TeacherScores(id, vocab, transport, k, values, indices, tail) { Attention = topAttention };
            default:
                throw new InvalidDataException($"Scores frame: unknown transport {(byte)transport}");
        }
    }

    /// <summary>The attention modules at the end of a Scores body, each size checked against the bytes left before allocating.</summary>
    private static List<AttentionVectors> Attention(ref Reader r)
    {
        var count = r.Byte();
        var modules = new List<AttentionVectors>(Math.Min((int)count, 3));
        for (var i = 0; i < count; i++)
        {
            var module = (AttentionModules)r.Byte();
            var batch = r.Count("attention batch");
            var queries = r.Count("attention query length");
            var keys = r.Count("attention key length");
            var dim = r.Count("attention dim");
            long queryValues = (long)batch * queries * dim, keyValues = (long)batch * keys * dim;
            r.Need(4 * (queryValues + 2 * keyValues), $"{module} attention vectors ({batch} x {queries}/{keys} x {dim})");
            modules.Add(new AttentionVectors(module, batch, queries, keys, dim, r.Array<float>(queryValues), r.Array<float>(keyValues), r.Array<float>(keyValues)));
        }
        CheckModules(modules.Select(m => m.Module), e => new InvalidDataException($"Scores frame: {e}"));
        return modules;
    }

    // ---- helpers ----

    private static TeacherForm Form(byte value, string frame) =>
        Enum.IsDefined((TeacherForm)value) ? (TeacherForm)value : throw new InvalidDataException($"{frame} frame: unknown teacher form {value}");

    /// <summary>Attention vectors exist only in an encoder-decoder teacher, and only for its three kinds of module.</summary>
    private static void CheckAttention(TeacherForm form, AttentionModules attention, Func<string, Exception> error)
    {
        const AttentionModules all = AttentionModules.EncoderSelf | AttentionModules.DecoderSelf | AttentionModules.Cross;
        if ((attention & ~all) != 0) throw error($"unknown attention modules {(byte)attention}");
        if (attention != AttentionModules.None && form != TeacherForm.EncoderDecoder)
            throw error($"attention vectors ({attention}) come from an encoder-decoder teacher only");
    }

    /// <summary>Each entry names exactly one module, none twice.</summary>
    private static void CheckModules(IEnumerable<AttentionModules> modules, Func<string, Exception> error)
    {
        var seen = AttentionModules.None;
        foreach (var module in modules)
        {
            if (module is not (AttentionModules.EncoderSelf or AttentionModules.DecoderSelf or AttentionModules.Cross))
                throw error($"attention entry {(byte)module} is not one module (encoder self, decoder self or cross)");
            if ((seen & module) != 0) throw error($"{module} attention appears twice");
            seen |= module;
        }
    }

    private static void CheckRange(int row, int length, int from, int count, Func<string, Exception> error)
    {
        if (from < 0 || count < 0 || (long)from + count > length)
            throw error($"row {row}: positions {from} .. {(long)from + count - 1} (ScoreFrom {from}, ScoreCount {count}) are outside the row's {length} tokens");
    }

    private static byte[] Utf8(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return bytes.Length <= MaxStringBytes ? bytes : bytes[..MaxStringBytes];
    }

    private static void PutInt(byte[] frame, ref int at, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(at), value);
        at += 4;
    }

    private static void PutLong(byte[] frame, ref int at, long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(frame.AsSpan(at), value);
        at += 8;
    }

    private static void PutString(byte[] frame, ref int at, byte[] utf8)
    {
        PutInt(frame, ref at, utf8.Length);
        utf8.CopyTo(frame, at);
        at += utf8.Length;
    }

    private static void PutArray<T>(byte[] frame, ref int at, ReadOnlySpan<T> values) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(values);
        var target = frame.AsSpan(at, bytes.Length);
        bytes.CopyTo(target);
        if (!BitConverter.IsLittleEndian) ReverseEach<T>(target);
        at += bytes.Length;
    }

    /// <summary>Big-endian machines only: swaps every element's bytes in place.</summary>
    private static void ReverseEach<T>(Span<byte> bytes) where T : unmanaged
    {
        var size = Marshal.SizeOf<T>();
        for (var i = 0; i < bytes.Length; i += size) bytes.Slice(i, size).Reverse();
    }

    /// <summary>Reads a body front to back; every read checks the bytes left and names the frame type when they are not.</summary>
    private ref struct Reader(ReadOnlySpan<byte> body, string frame)
    {
        private readonly ReadOnlySpan<byte> _body = body;
        private int _at;

        public void Need(long bytes, string what)
        {
            if (bytes > _body.Length - _at)
                throw new InvalidDataException($"{frame} frame is too short: {what} need {bytes} bytes, {_body.Length - _at} left");
        }

        public byte Byte()
        {
            Need(1, "a byte");
            return _body[_at++];
        }

        public int Int()
        {
            Need(4, "an int32");
            var v = BinaryPrimitives.ReadInt32LittleEndian(_body[_at..]);
            _at += 4;
            return v;
        }

        public int Count(string what)
        {
            var v = Int();
            if (v < 0) throw new InvalidDataException($"{frame} frame: {what} {v} is negative");
            return v;
        }

        public long Long()
        {
            Need(8, "an int64");
            var v = BinaryPrimitives.ReadInt64LittleEndian(_body[_at..]);
            _at += 8;
            return v;
        }

        public float Float()
        {
            Need(4, "a float32");
            var v = BinaryPrimitives.ReadSingleLittleEndian(_body[_at..]);
            _at += 4;
            return v;
        }

        public string String()
        {
            var length = Count("string length");
            if (length > MaxStringBytes) throw new InvalidDataException($"{frame} frame: string of {length} bytes exceeds {MaxStringBytes}");
            Need(length, "the string");
            var s = Encoding.UTF8.GetString(_body.Slice(_at, length));
            _at += length;
            return s;
        }

        /// <summary>Callers have checked the bytes with <see cref="Need"/> first, so the allocation is backed by data.</summary>
        public T[] Array<T>(long count) where T : unmanaged
        {
            var size = Marshal.SizeOf<T>();
            Need(count * size, $"{count} values");
            var values = new T[count];
            var target = MemoryMarshal.AsBytes(values.AsSpan());
            _body.Slice(_at, target.Length).CopyTo(target);
            if (!BitConverter.IsLittleEndian) ReverseEach<T>(target);
            _at += target.Length;
            return values;
        }

        public readonly void End()
        {
            if (_at != _body.Length) throw new InvalidDataException($"{frame} frame is too long: {_body.Length - _at} bytes left after its last field");
        }
    }
}
