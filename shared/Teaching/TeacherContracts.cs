namespace Training.Shared.Teaching;

/// <summary>What the teacher sends per position: the whole distribution, or its top k plus the mass left over.</summary>
public enum TeacherTransport : byte
{
    Full = 1,
    TopK = 2,
}

/// <summary>What a teacher model is, so a student asks it in the form it reads (checked at the handshake).</summary>
public enum TeacherForm : byte
{
    /// <summary>A decoder-only model: it reads one row per example (the prompt left-padded to S, then the target).</summary>
    Causal = 1,

    /// <summary>An encoder-decoder model (MiniEnD): it reads the student's encoder and decoder inputs as they are.</summary>
    EncoderDecoder = 2,
}

/// <summary>Last-layer attention modules of an encoder-decoder whose query, key and value vectors a request asks for.</summary>
[Flags]
public enum AttentionModules : byte
{
    None = 0,
    EncoderSelf = 1,
    DecoderSelf = 2,
    Cross = 4,
}

/// <summary>
/// Rows: teacher input token ids, one array per example (lengths may differ). For row i the teacher returns the
/// distribution of the next token at positions ScoreFrom[i] .. ScoreFrom[i] + ScoreCount[i] - 1. N = sum(ScoreCount).
/// With <see cref="DecoderRows"/> (the encoder-decoder form) Rows are the encoder inputs, DecoderRows the decoder
/// inputs, and the positions index the decoder rows; <see cref="Attention"/> then names the last-layer attention
/// modules whose vectors come back with the scores.
/// </summary>
public sealed record TeacherScoreRequest(long RequestId, IReadOnlyList<long[]> Rows, int[] ScoreFrom, int[] ScoreCount,
    TeacherTransport Transport, int TopK, float Temperature)
{
    public IReadOnlyList<long[]>? DecoderRows { get; init; }
    public AttentionModules Attention { get; init; }
    public TeacherForm Form => DecoderRows is null ? TeacherForm.Causal : TeacherForm.EncoderDecoder;
}

/// <summary>
/// One last-layer attention module's vectors over a batch whose rows were right-padded to a common width: queries
/// [Batch, QueryLength, Dim], keys and values [Batch, KeyLength, Dim] (key/value heads repeated to the query heads, so
/// Dim = heads * head_dim for all three), row-major. Self-attention: both lengths are the padded input's; cross-attention:
/// decoder queries over encoder keys and values.
/// </summary>
public sealed record AttentionVectors(AttentionModules Module, int Batch, int QueryLength, int KeyLength, int Dim,
    float[] Queries, float[] Keys, float[] Values);

/// <summary>
/// Full: Values holds N * Vocab log-probabilities (row-major, positions in request order), Indices and Tail null, K = 0.
/// TopK: Values holds N * K log-probabilities (descending per position), Indices N * K token ids, Tail N values =
/// log of the probability mass outside the top k.
/// </summary>
public sealed record TeacherScores(long RequestId, int Vocab, TeacherTransport Transport, int K, float[] Values,
    int[]? Indices, float[]? Tail)
{
    /// <summary>The attention vectors the request asked for, one entry per module, in flag order.</summary>
    public IReadOnlyList<AttentionVectors> Attention { get; init; } = [];
}

/// <summary>The frozen teacher model behind the stream; the server calls it from one thread only.</summary>
public interface ITeacherScorer
{
    int VocabSize { get; }

    /// <summary>Students must present the same id: log-probabilities over another tokenizer's ids are meaningless.</summary>
    string TokenizerId { get; }

    /// <summary>Which request form the model reads; a student asking in the other form is refused at the handshake.</summary>
    TeacherForm Form => TeacherForm.Causal;

    TeacherScores Score(TeacherScoreRequest request);
}

/// <summary>Bounds on what one peer may make the other allocate.</summary>
public sealed record TeacherStreamLimits(int MaxFrameBytes)
{
    public static TeacherStreamLimits Default { get; } = new(256 << 20);
}

/// <summary>No teacher could be reached within <see cref="TeacherPoolOptions.WaitForTeacher"/>; the message names the endpoints tried and why they failed.</summary>
public sealed class TeacherUnavailableException(string message) : Exception(message);

/// <summary>The teacher uses another tokenizer than the student: fatal, never retried, since no other teacher of the run will differ.</summary>
public sealed class TeacherMismatchException(string message) : Exception(message);
