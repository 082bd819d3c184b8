using Training.Shared.Teaching;

namespace Training.Tests.Teaching;

/// <summary>
/// A teacher without a model: the logits of position p in a row are an arithmetic function of the token there, p and
/// the vocabulary id, so every answer is deterministic and can be recomputed exactly by the test.
/// </summary>
internal sealed class TestScorer(int vocab = 50, string tokenizerId = "test-tokenizer-v1", TimeSpan? delay = null) : ITeacherScorer
{
    private int _calls;
    private int _threadId;

    public int VocabSize => vocab;
    public string TokenizerId => tokenizerId;
    public int Calls => Volatile.Read(ref _calls);

    /// <summary>True while every call came on the same thread (the model must stay on one).</summary>
    public bool OneThread { get; private set; } = true;

    /// <summary>Requests with this temperature make the scorer throw (a model failure).</summary>
    public const float FailingTemperature = 13f;

    public TeacherScores Score(TeacherScoreRequest request)
    {
        var thread = Environment.CurrentManagedThreadId;
        if (Interlocked.CompareExchange(ref _threadId, thread, 0) is var first && first != 0 && first != thread) OneThread = false;
        Interlocked.Increment(ref _calls);
        if (delay is { } d) Thread.Sleep(d);
        if (request.Temperature == FailingTemperature) throw new ArithmeticException("the test model overflowed");

        var n = request.ScoreCount.Sum();
        var full = new float[n * vocab];
        var at = 0;
        for (var row = 0; row < request.Rows.Count; row++)
            for (var p = request.ScoreFrom[row]; p < request.ScoreFrom[row] + request.ScoreCount[row]; p++, at++)
                LogSoftmax(request.Rows[row][p], p, request.Temperature, full.AsSpan(at * vocab, vocab));
        if (request.Transport == TeacherTransport.Full) return new TeacherScores(request.RequestId, vocab, TeacherTransport.Full, 0, full, null, null);

        var k = request.TopK;
        var values = new float[n * k];
        var indices = new int[n * k];
        var tail = new float[n];
        for (var i = 0; i < n; i++)
        {
            var position = full.AsSpan(i * vocab, vocab).ToArray();
            var order = Enumerable.Range(0, vocab).OrderByDescending(v => position[v]).ThenBy(v => v).ToArray();
            double rest = 0;
            for (var j = 0; j < vocab; j++)
            {
                if (j < k)
                {
                    values[i * k + j] = position[order[j]];
                    indices[i * k + j] = order[j];
                }
                else rest += Math.Exp(position[order[j]]);
            }
            tail[i] = rest > 0 ? (float)Math.Log(rest) : float.NegativeInfinity;
        }
        return new TeacherScores(request.RequestId, vocab, TeacherTransport.TopK, k, values, indices, tail);
    }

    private void LogSoftmax(long token, int position, float temperature, Span<float> output)
    {
        var logits = new double[vocab];
        for (var v = 0; v < vocab; v++) logits[v] = ((token * 31 + position * 7 + v * 13) % 17) / 4.0 / temperature;
        var max = logits.Max();
        var sum = logits.Sum(l => Math.Exp(l - max));
        var log = max + Math.Log(sum);
        for (var v = 0; v < vocab; v++) output[v] = (float)(logits[v] - log);
    }

    /// <summary>A request of a few rows of different lengths, ids derived from <paramref name="seed"/>.</summary>
    public static TeacherScoreRequest Request(long id, int seed, TeacherTransport transport = TeacherTransport.TopK, int topK = 5, int vocab = 50)
    {
        var rows = new List<long[]>();
        var from = new List<int>();
        var count = new List<int>();
        for (var r = 0; r < 3; r++)
        {
            var length = 4 + (seed + r) % 5;
            rows.Add(Enumerable.Range(0, length).Select(i => (long)((seed * 7 + r * 3 + i * 11) % vocab)).ToArray());
            from.Add(r % 2);
            count.Add(length - r % 2 - 1);
        }
        return new TeacherScoreRequest(id, rows, [.. from], [.. count], transport, topK, 1f);
    }
}
