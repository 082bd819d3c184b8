namespace Training.Shared.Teaching;

/// <summary>What the teacher sends per position: the whole distribution, or its top k plus the mass left over.</summary>
public enum TeacherTransport : byte
{
    Full = 1,
    TopK = 2,
}

/// <summary>
/// Rows: teacher input token ids, one array per example (lengths may differ). For row i the teacher returns the
/// distribution of the next token at positions ScoreFrom[i] .. ScoreFrom[i] + ScoreCount[i] - 1. N = sum(ScoreCount).
/// </summary>
public sealed record TeacherScoreRequest(long RequestId, IReadOnlyList<long[]> Rows, int[] ScoreFrom, int[] ScoreCount,
    TeacherTransport Transport, int TopK, float Temperature);

/// <summary>
/// Full: Values holds N * Vocab log-probabilities (row-major, positions in request order), Indices and Tail null, K = 0.
/// TopK: Values holds N * K log-probabilities (descending per position), Indices N * K token ids, Tail N values =
/// log of the probability mass outside the top k.
/// </summary>
public sealed record TeacherScores(long RequestId, int Vocab, TeacherTransport Transport, int K, float[] Values,
    int[]? Indices, float[]? Tail);

/// <summary>The frozen teacher model behind the stream; the server calls it from one thread only.</summary>
public interface ITeacherScorer
{
    int VocabSize { get; }

    /// <summary>Students must present the same id: log-probabilities over another tokenizer's ids are meaningless.</summary>
    string TokenizerId { get; }

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
