using System.Text;

namespace Training.Tests.Support;

/// <summary>
/// Writes SentencePiece model files (the ModelProto protobuf that spm_train writes: pieces with scores and types, the
/// trainer spec's model type and special ids, the normalizer spec), so tests need no downloaded tokenizer.
/// </summary>
public static class SentencePieceModels
{
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Byte = 6 }

    public sealed record Piece(string Text, float Score, PieceType Type = PieceType.Normal);

    /// <summary>Unigram model (T5's kind) or BPE (Llama's).</summary>
    public static void Write(string path, IReadOnlyList<Piece> pieces, bool unigram, int unkId, int bosId, int eosId, int padId)
    {
        var model = Message(m =>
        {
            foreach (var piece in pieces)
                Bytes(m, 1, Message(p => { Bytes(p, 1, Encoding.UTF8.GetBytes(piece.Text)); Float(p, 2, piece.Score); Int(p, 3, (int)piece.Type); }));
            Bytes(m, 2, Message(t =>
            {
                Int(t, 3, unigram ? 1 : 2);
                Int(t, 4, pieces.Count);
                Int(t, 40, unkId);
                Int(t, 41, bosId);
                Int(t, 42, eosId);
                Int(t, 43, padId);
            }));
            Bytes(m, 3, Message(n => { Bytes(n, 1, "identity"u8.ToArray()); Int(n, 3, 1); Int(n, 4, 1); Int(n, 5, 1); }));
        });
        File.WriteAllBytes(path, model);
    }

    /// <summary>T5's layout (pad 0, eos 1, unk 2, no bos) with <paramref name="count"/> pieces in all: the letters, the
    /// word-start marker and words of the test corpus, then filler pieces up to the count.</summary>
    public static void WriteT5Style(string path, int count = 64)
    {
        var pieces = new List<Piece> { new("<pad>", 0, PieceType.Control), new("</s>", 0, PieceType.Control), new("<unk>", 0, PieceType.Unknown), new("▁", -2) };
        foreach (var c in "abcdefghijklmnopqrstuvwxyz.,") pieces.Add(new(c.ToString(), -5));
        foreach (var word in new[] { "▁the", "▁a", "▁of", "▁and", "▁to", "▁in", "▁is", "▁hello", "▁world" }) pieces.Add(new(word, -3));
        for (var i = pieces.Count; i < count; i++) pieces.Add(new($"▁filler{i}", -20));
        Write(path, pieces.Take(count).ToList(), unigram: true, unkId: 2, bosId: -1, eosId: 1, padId: 0);
    }

    /// <summary>Llama's layout (unk 0, bos 1, eos 2, no pad), a BPE model whose merges follow the piece scores.</summary>
    public static void WriteLlamaStyle(string path)
    {
        var pieces = new List<Piece> { new("<unk>", 0, PieceType.Unknown), new("<s>", 0, PieceType.Control), new("</s>", 0, PieceType.Control) };
        string[] normal = ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "he", "ll", "lo", "▁he", "▁hel", "▁hello", "▁w", "▁wo", "▁wor", "▁world"];
        for (var i = 0; i < normal.Length; i++) pieces.Add(new(normal[i], -i));
        Write(path, pieces, unigram: false, unkId: 0, bosId: 1, eosId: 2, padId: -1);
    }

    private static byte[] Message(Action<Stream> write)
    {
        using var stream = new MemoryStream();
        write(stream);
        return stream.ToArray();
    }

    private static void Varint(Stream s, ulong v)
    {
        while (v >= 0x80)
        {
            s.WriteByte((byte)(v | 0x80));
            v >>= 7;
        }
        s.WriteByte((byte)v);
    }

    private static void Tag(Stream s, int field, int wire) => Varint(s, (ulong)((field << 3) | wire));
    private static void Bytes(Stream s, int field, byte[] bytes) { Tag(s, field, 2); Varint(s, (ulong)bytes.Length); s.Write(bytes); }
    // Negative ids (a special the model does not have) are written as protobuf's 10-byte two's complement varint.
    private static void Int(Stream s, int field, long value) { Tag(s, field, 0); Varint(s, unchecked((ulong)value)); }
    private static void Float(Stream s, int field, float value) { Tag(s, field, 5); s.Write(BitConverter.GetBytes(value)); }
}
