using static TorchSharp.torch;

namespace Training.Shared.Objectives.Distillation;

/// <summary>
/// What the teacher says at N positions, at the distillation temperature: either its full log-distribution [N, V],
/// or, to save memory and transfer, its top k log-probabilities [N, K] with their token ids [N, K] and the log of the
/// mass it puts on every other token [N]. The tensors are detached: no gradient ever reaches the teacher.
/// Dispose releases them.
/// </summary>
public sealed class TeacherTarget : IDisposable
{
    private TeacherTarget(Tensor logProbabilities, Tensor? indices, Tensor? tailLogMass, Tensor? valid)
    {
        LogProbabilities = logProbabilities;
        Indices = indices;
        TailLogMass = tailLogMass;
        Valid = valid;
    }

    /// <summary>[N, V] for a full target, [N, K] for a top-k one.</summary>
    public Tensor LogProbabilities { get; }

    /// <summary>[N, K] int64 token ids of the top-k entries; null for a full target.</summary>
    public Tensor? Indices { get; }

    /// <summary>[N] log of the mass outside the top k; null for a full target.</summary>
    public Tensor? TailLogMass { get; }

    /// <summary>
    /// [N, K] bool, or null when every top-k entry counts. After <see cref="TruncatedTo"/> an entry whose token is cut
    /// off no longer names a real token: its mass moved to the tail and the loss skips it.
    /// </summary>
    public Tensor? Valid { get; }

    public bool IsTopK => Indices is not null;
    public long Positions => LogProbabilities.shape[0];

    /// <summary>Vocabulary size for a full target; k for a top-k one.</summary>
    public long Width => LogProbabilities.shape[1];

    public static TeacherTarget Full(Tensor logProbabilities)
    {
        ArgumentNullException.ThrowIfNull(logProbabilities);
        if (logProbabilities.dim() != 2) throw new ArgumentException($"teacher log-probabilities must be [N, V], got [{string.Join(", ", logProbabilities.shape)}]", nameof(logProbabilities));
        return new TeacherTarget(logProbabilities.detach(), null, null, null);
    }

    public static TeacherTarget TopK(Tensor logProbabilities, Tensor indices, Tensor tailLogMass)
    {
        ArgumentNullException.ThrowIfNull(logProbabilities);
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentNullException.ThrowIfNull(tailLogMass);
        if (logProbabilities.dim() != 2) throw new ArgumentException($"top-k log-probabilities must be [N, K], got [{string.Join(", ", logProbabilities.shape)}]", nameof(logProbabilities));
        if (!indices.shape.SequenceEqual(logProbabilities.shape))
            throw new ArgumentException($"top-k indices [{string.Join(", ", indices.shape)}] must match the log-probabilities [{string.Join(", ", logProbabilities.shape)}]", nameof(indices));
        if (tailLogMass.dim() != 1 || tailLogMass.shape[0] != logProbabilities.shape[0])
            throw new ArgumentException($"tail log-mass must be [N] = [{logProbabilities.shape[0]}], got [{string.Join(", ", tailLogMass.shape)}]", nameof(tailLogMass));
        return new TeacherTarget(logProbabilities.detach(), indices.detach().to(ScalarType.Int64), tailLogMass.detach(), null);
    }

    /// <summary>A full target from a row-major [positions, vocab] array of log-probabilities.</summary>
    public static TeacherTarget FromArrays(int positions, int vocab, float[] fullValues, Device device)
    {
        ArgumentNullException.ThrowIfNull(fullValues);
        if (fullValues.Length != (long)positions * vocab)
            throw new ArgumentException($"expected {positions} x {vocab} = {(long)positions * vocab} values, got {fullValues.Length}", nameof(fullValues));
        return new TeacherTarget(ObjectiveMath.FloatTensor(fullValues, [positions, vocab], device), null, null, null);
    }

    /// <summary>A top-k target from row-major [positions, k] arrays and the [positions] tail log-masses.</summary>
    public static TeacherTarget FromArrays(int positions, int k, float[] topValues, int[] topIndices, float[] tail, Device device)
    {
        ArgumentNullException.ThrowIfNull(topValues);
        ArgumentNullException.ThrowIfNull(topIndices);
        ArgumentNullException.ThrowIfNull(tail);
        if (topValues.Length != (long)positions * k || topIndices.Length != (long)positions * k)
            throw new ArgumentException($"expected {positions} x {k} = {(long)positions * k} top values and indices, got {topValues.Length} and {topIndices.Length}");
        if (tail.Length != positions) throw new ArgumentException($"expected {positions} tail masses, got {tail.Length}", nameof(tail));
        var ids = Array.ConvertAll(topIndices, i => (long)i);
        return new TeacherTarget(
            ObjectiveMath.FloatTensor(topValues, [positions, k], device),
            tensor(ids, [positions, k], device: device),
            ObjectiveMath.FloatTensor(tail, [positions], device),
            null);
    }

    /// <summary>
    /// The target over the first <paramref name="vocab"/> tokens only, for a student whose vocabulary is smaller (SPEC:
    /// both are cut to the smaller vocabulary). A full target is cut and renormalized; a top-k target moves the mass of
    /// entries at or past <paramref name="vocab"/> into its tail, so its k + 1 buckets still sum to one.
    /// Returns a new target; this one stays valid and is still the caller's to dispose.
    /// </summary>
    public TeacherTarget TruncatedTo(int vocab)
    {
        if (vocab < 1) throw new ArgumentOutOfRangeException(nameof(vocab), vocab, "must be >= 1");
        using var noGrad = no_grad();
        if (!IsTopK)
        {
            if (vocab > Width) throw new ArgumentOutOfRangeException(nameof(vocab), vocab, $"the teacher has only {Width} tokens: truncate the student's logits instead");
            using var fullScope = NewDisposeScope();
            var cut = LogProbabilities.narrow(1, 0, vocab);
            return new TeacherTarget(fullScope.MoveToOuter(cut - cut.logsumexp(1, keepdim: true)), null, null, null);
        }

        using var scope = NewDisposeScope();
        var valid = Indices!.lt(vocab);
        if (Valid is not null) valid = valid.logical_and(Valid);
        var invalid = valid.logical_not();
        // Entries cut now join the tail; ones cut earlier are -inf already and add nothing.
        var tail = cat([TailLogMass!.unsqueeze(1), LogProbabilities.masked_fill(valid, double.NegativeInfinity)], 1).logsumexp(1);
        // A cut entry keeps a harmless in-range id (0) so gathers stay in bounds; Valid says to skip it.
        return new TeacherTarget(
            scope.MoveToOuter(LogProbabilities.masked_fill(invalid, double.NegativeInfinity)),
            scope.MoveToOuter(Indices.masked_fill(invalid, 0)),
            scope.MoveToOuter(tail),
            scope.MoveToOuter(valid));
    }

    public void Dispose()
    {
        LogProbabilities.Dispose();
        Indices?.Dispose();
        TailLogMass?.Dispose();
        Valid?.Dispose();
    }
}
