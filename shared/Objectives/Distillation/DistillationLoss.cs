using static TorchSharp.torch;

namespace Training.Shared.Objectives.Distillation;

/// <summary>Which divergence between teacher p and student q the distillation loss takes (SPEC: all three are supported).</summary>
public enum DistillationDivergence
{
    /// <summary>KL(p || q): mass-covering; the released code's choice.</summary>
    ForwardKl,

    /// <summary>KL(q || p): mode-seeking; what the paper's text describes.</summary>
    ReverseKl,

    /// <summary>Generalized JSD with weight beta on the teacher: beta KL(p || M) + (1 - beta) KL(q || M), M = beta p + (1 - beta) q.</summary>
    Jsd,
}

/// <summary>
/// The teacher-student term of the distillation loss, <c>D(teacher, student)</c>, per position summed over the
/// vocabulary (or over k + 1 buckets for a top-k teacher) and averaged over the unmasked positions.
/// </summary>
public static class DistillationLoss
{
    /// <summary>
    /// Stand-in for log 0 where a log-probability must stay finite: the student's tail when the teacher's top k cover
    /// the whole vocabulary, and the teacher's zero-mass buckets under reverse KL (which would otherwise be infinite).
    /// e^-100 is far below any probability that matters, so values move by less than float rounding.
    /// </summary>
    public const double LogFloor = -100.0;

    /// <summary>
    /// Mean over the positions where <paramref name="mask"/> is true of D(teacher || student) on the student's
    /// log_softmax(logits / T), times T^2 so gradient magnitudes do not shrink with T. The teacher's log-probabilities
    /// are taken as given, already at temperature T. A mask with no true entry gives 0, not NaN.
    /// </summary>
    /// <param name="studentLogits">[N, V] float32 or float64; the gradient flows here only.</param>
    /// <param name="mask">[N] bool: false for padded positions.</param>
    /// <param name="beta">The JSD teacher weight, in (0, 1); ignored by the KL divergences.</param>
    public static Tensor Divergence(Tensor studentLogits, TeacherTarget teacher, Tensor mask, DistillationDivergence divergence, double beta, double temperature)
    {
        ArgumentNullException.ThrowIfNull(studentLogits);
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(mask);
        if (studentLogits.dim() != 2) throw new ArgumentException($"student logits must be [N, V], got [{string.Join(", ", studentLogits.shape)}]", nameof(studentLogits));
        var positions = studentLogits.shape[0];
        var vocab = studentLogits.shape[1];
        if (teacher.Positions != positions) throw new ArgumentException($"the teacher has {teacher.Positions} positions, the student {positions}", nameof(teacher));
        if (!teacher.IsTopK && teacher.Width != vocab)
            throw new ArgumentException($"teacher vocab {teacher.Width} != student vocab {vocab}: cut both to the smaller one (TeacherTarget.TruncatedTo, student logits narrowed)", nameof(teacher));
        if (mask.dim() != 1 || mask.shape[0] != positions || mask.dtype != ScalarType.Bool)
            throw new ArgumentException($"the mask must be bool [{positions}], got {mask.dtype} [{string.Join(", ", mask.shape)}]", nameof(mask));
        if (divergence == DistillationDivergence.Jsd && !(beta > 0 && beta < 1))
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "the JSD weight beta must be in (0, 1)");
        if (!(temperature > 0) || double.IsInfinity(temperature)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "must be > 0");

        using var scope = NewDisposeScope();
        var dtype = studentLogits.dtype;
        var device = studentLogits.device;
        var studentAll = (studentLogits / temperature).log_softmax(1);
        var (p, q, buckets) = teacher.IsTopK ? Buckets(studentAll, teacher, dtype, device) : (teacher.LogProbabilities.to(dtype, device).detach(), studentAll, (Tensor?)null);

        var terms = divergence switch
        {
            DistillationDivergence.ForwardKl => KlTerms(p, q),
            DistillationDivergence.ReverseKl => KlTerms(q, p.clamp_min(LogFloor)),
            DistillationDivergence.Jsd => JsdTerms(p, q, beta),
            _ => throw new ArgumentOutOfRangeException(nameof(divergence), divergence, null),
        };
        if (buckets is not null) terms = terms.where(buckets, 0.0);
        var perPosition = terms.sum(1);

        var kept = mask.to(device);
        // where, not a product: a masked position's value (even inf) must not leak in as 0 * inf = NaN.
        var total = perPosition.where(kept, 0.0).sum();
        var count = kept.sum().clamp_min(1).to(dtype);
        return scope.MoveToOuter(total / count * (temperature * temperature));
    }

    /// <summary>
    /// The (k + 1)-bucket distributions of a top-k teacher: teacher and student log-probabilities at the teacher's
    /// k ids, then each one's remaining mass. The student's is a logsumexp over the ids not in the top k (exact, no
    /// 1 - sum cancellation), floored at <see cref="LogFloor"/> for when the top k cover the vocabulary.
    /// Buckets of entries cut by truncation get dummy finite values and a false in the returned validity mask.
    /// </summary>
    private static (Tensor Teacher, Tensor Student, Tensor? Valid) Buckets(Tensor studentAll, TeacherTarget teacher, ScalarType dtype, Device device)
    {
        var indices = teacher.Indices!.to(device);
        var valid = teacher.Valid?.to(device);
        var gathered = studentAll.gather(1, indices);

        // scatter_add, not scatter: a cut entry's placeholder id may repeat a real one, and only real ones count.
        var weight = valid is null ? ones_like(indices, dtype: dtype) : valid.to(dtype);
        var inTop = zeros_like(studentAll).scatter_add(1, indices, weight).gt(0);
        // A finite fill keeps logsumexp's backward finite when every id is in the top k.
        var studentTail = studentAll.masked_fill(inTop, -1e9).logsumexp(1, keepdim: true).clamp_min(LogFloor);

        var teacherBuckets = cat([teacher.LogProbabilities.to(dtype, device), teacher.TailLogMass!.to(dtype, device).unsqueeze(1)], 1).detach();
        var studentBuckets = cat([gathered, studentTail], 1);
        if (valid is null) return (teacherBuckets, studentBuckets, null);

        var bucketValid = cat([valid, ones(valid.shape[0], 1, dtype: ScalarType.Bool, device: device)], 1);
        // Dummy zeros in cut buckets keep -inf out of the arithmetic (and NaN out of the backward); the caller drops them.
        return (teacherBuckets.where(bucketValid, 0.0), studentBuckets.where(bucketValid, 0.0), bucketValid);
    }

    /// <summary>Per-entry a (log a - log b) with a = exp(la); an entry with a = 0 contributes exactly 0 (0 log 0 = 0), gradient included.</summary>
    private static Tensor KlTerms(Tensor la, Tensor lb)
    {
        var present = la.isneginf().logical_not();
        // Double where: the discarded branch must be finite too, or its 0 * inf gradient is NaN.
        var safeA = la.where(present, 0.0);
        var safeB = lb.where(present, 0.0);
        return (safeA.exp() * (safeA - safeB)).where(present, 0.0);
    }

    /// <summary>beta KL(p || M) + (1 - beta) KL(q || M) per entry, log M = logsumexp(log beta + log p, log(1 - beta) + log q).</summary>
    private static Tensor JsdTerms(Tensor lp, Tensor lq, double beta)
    {
        var logMixture = stack([lp + Math.Log(beta), lq + Math.Log(1 - beta)], 0).logsumexp(0);
        return beta * KlTerms(lp, logMixture) + (1 - beta) * KlTerms(lq, logMixture);
    }
}
