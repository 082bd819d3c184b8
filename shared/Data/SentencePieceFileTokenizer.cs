using Microsoft.ML.Tokenizers;

namespace Training.Shared.Data;

/// <summary>
/// A SentencePiece model file (<c>.model</c>, unigram or BPE: T5's and Llama's tokenizers) read through
/// Microsoft.ML.Tokenizers. The model's pieces keep their ids. Pad is its <c>&lt;pad&gt;</c> piece, or a new id after the
/// pieces when it has none; eos is its eos; bos is its bos, or pad when it has none (T5 starts decoding from pad).
/// Sentinels sit at the top of the vocabulary as for every tokenizer here, and the size is rounded up to a multiple of
/// <c>padVocabTo</c> (T5's 32,000 pieces + 100 sentinels padded to 128: 32,128). Ids between the pieces and the
/// sentinels are never produced.
/// </summary>
public sealed class SentencePieceFileTokenizer : FileTokenizer
{
    public const string KindName = "sentencepiece";

    private readonly SentencePieceTokenizer _model;

    public SentencePieceFileTokenizer(string path, int sentinelCount, int padVocabTo = 1) : this(path, Load(path, sentinelCount, padVocabTo))
    {
    }

    private SentencePieceFileTokenizer(string path, (SentencePieceTokenizer Model, int Pieces, SpecialTokens Special) loaded)
        : base(path, loaded.Pieces, loaded.Special) => _model = loaded.Model;

    public override string Name => KindName;

    protected override IReadOnlyList<int> EncodeText(string text) =>
        _model.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);

    protected override string DecodePieces(IReadOnlyList<int> pieces) => _model.Decode(pieces) ?? "";

    private static (SentencePieceTokenizer, int, SpecialTokens) Load(string path, int sentinelCount, int padVocabTo)
    {
        CheckCounts(sentinelCount, padVocabTo);
        if (!File.Exists(path)) throw new FileNotFoundException($"tokenizer.path {path}: no such file (a SentencePiece .model)", path);
        var bytes = File.ReadAllBytes(path);
        (int Pieces, int Bos, int Eos, int Pad) ids;
        SentencePieceTokenizer model;
        try
        {
            ids = SpecialIds(bytes);
            // Microsoft.ML.Tokenizers needs a bos piece, which T5's models lack (bos_id -1): a second trainer_spec
            // after the file's overrides it (protobuf merges repeated messages), naming pad or eos, for the library only.
            if (ids.Bos < 0) bytes = [.. bytes, .. TrainerSpecOverride(41, ids.Pad >= 0 ? ids.Pad : ids.Eos)];
            using var stream = new MemoryStream(bytes);
            model = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"tokenizer.path {path}: not a SentencePiece model ({e.GetType().Name}: {e.Message})", e);
        }
        var pieces = ids.Pieces;
        if (ids.Eos < 0 || ids.Eos >= pieces) throw new InvalidDataException($"tokenizer.path {path}: the model defines no end-of-sentence piece");
        var pad = ids.Pad >= 0 && ids.Pad < pieces ? ids.Pad : pieces;
        var bos = ids.Bos >= 0 && ids.Bos < pieces ? ids.Bos : pad;
        return (model, pieces, SpecialTokens.ForFiles(pieces, pad, bos, ids.Eos, sentinelCount, padVocabTo));
    }

    /// <summary>How many pieces the model has (field 1), and the bos_id, eos_id and pad_id of its trainer_spec (field 2;
    /// 41-43), -1 where a model has none.</summary>
    private static (int Pieces, int Bos, int Eos, int Pad) SpecialIds(byte[] model)
    {
        // spm_train's defaults, for a trainer_spec that leaves them out.
        var (pieces, bos, eos, pad) = (0, 1, 2, -1);
        var at = 0;
        while (at < model.Length)
        {
            var (field, wire) = Key(model, ref at);
            if (field == 2 && wire == 2)
            {
                var end = checked((int)Varint(model, ref at) + at);
                while (at < end)
                {
                    var (inner, innerWire) = Key(model, ref at);
                    if (innerWire == 0 && inner is 41 or 42 or 43)
                    {
                        var value = unchecked((int)Varint(model, ref at));
                        if (inner == 41) bos = value; else if (inner == 42) eos = value; else pad = value;
                    }
                    else Skip(model, ref at, innerWire);
                }
            }
            else
            {
                if (field == 1 && wire == 2) pieces++;
                Skip(model, ref at, wire);
            }
        }
        return (pieces, bos, eos, pad);
    }

    private static (int Field, int Wire) Key(byte[] bytes, ref int at)
    {
        var key = Varint(bytes, ref at);
        return ((int)(key >> 3), (int)(key & 7));
    }

    private static ulong Varint(byte[] bytes, ref int at)
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var b = bytes[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new InvalidDataException("a varint longer than 10 bytes");
    }

    private static void Skip(byte[] bytes, ref int at, int wire)
    {
        if (wire == 0)
        {
            Varint(bytes, ref at);
            return;
        }
        at = wire switch
        {
            1 => at + 8,
            2 => checked((int)Varint(bytes, ref at) + at),
            5 => at + 4,
            _ => throw new InvalidDataException($"protobuf wire type {wire} is not used by SentencePiece models"),
        };
        if (at > bytes.Length) throw new InvalidDataException("a field runs past the end of the file");
    }

    /// <summary>A trainer_spec message (field 2) holding one varint field.</summary>
    private static byte[] TrainerSpecOverride(int field, int value)
    {
        var inner = new List<byte>();
        void Write(List<byte> to, ulong v)
        {
            while (v >= 0x80) { to.Add((byte)(v | 0x80)); v >>= 7; }
            to.Add((byte)v);
        }
        Write(inner, (ulong)(field << 3));
        Write(inner, unchecked((ulong)(long)value));
        var message = new List<byte>();
        Write(message, (2 << 3) | 2);
        Write(message, (ulong)inner.Count);
        message.AddRange(inner);
        return [.. message];
    }
}
