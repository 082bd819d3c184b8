using static TorchSharp.torch;

namespace Training.Shared.Objectives.Distillation;

/// <summary>
/// MiniEnD's attention relations (SPEC.md section 4), in MiniLM's multi-head form so that a teacher and a student of
/// different widths and head counts compare: a module's [B, L, D] query, key and value vectors are split into R
/// relation heads of D / R each, and a relation is the softmax over positions of the scaled dot products
/// <c>softmax(a_r b_r^T / sqrt(D / R))</c>, [B, R, Lq, Lk]. Two relations per module: the attention relation
/// (queries against keys) and the value relation (values against values). The loss of a relation is
/// KL(teacher || student) per query position, averaged over relation heads and real query positions; positions a
/// query may not see (padding keys, later positions in causal self-attention) take no part.
/// </summary>
public static class AttentionRelations
{
    // Finite, so a masked entry is exactly 0 in both distributions and its KL term is 0 * finite, never NaN.
    private const double Masked = -1e9;

    /// <summary>One module's vectors [B, L, D] (keys and values share their length).</summary>
    public sealed record Vectors(Tensor Queries, Tensor Keys, Tensor Values);

    /// <summary>Log-relations [B, R, Lq, Lk] of <paramref name="a"/> [B, Lq, D] against <paramref name="b"/> [B, Lk, D].</summary>
    /// <param name="allowed">[B, Lq, Lk] bool: the pairs that count</param>
    public static Tensor LogRelation(Tensor a, Tensor b, int heads, Tensor allowed)
    {
        var (batch, queries, dim) = (a.shape[0], a.shape[1], a.shape[2]);
        var keys = b.shape[1];
        if (b.shape[2] != dim) throw new ArgumentException($"relation vectors differ in width: {dim} and {b.shape[2]}");
        if (dim % heads != 0)
            throw new ArgumentException($"distill.relation_heads {heads} does not divide the attention width {dim} (heads x head_dim)");
        var width = dim / heads;
        var left = a.view(batch, queries, heads, width).transpose(1, 2);   // [B, R, Lq, D/R]
        var right = b.view(batch, keys, heads, width).transpose(1, 2);     // [B, R, Lk, D/R]
        var scores = matmul(left, right.transpose(2, 3)) / Math.Sqrt(width);
        return nn.functional.log_softmax(scores.masked_fill(allowed.unsqueeze(1).logical_not(), Masked), -1);
    }

    /// <summary>KL(teacher || student) of one relation, averaged over relation heads and the real query positions.</summary>
    /// <param name="queryIsReal">[B, Lq] bool</param>
    public static Tensor Divergence(Tensor teacherLog, Tensor studentLog, Tensor queryIsReal)
    {
        var perQuery = (teacherLog.exp() * (teacherLog - studentLog)).sum(-1);   // [B, R, Lq]
        var weight = queryIsReal.unsqueeze(1).to(perQuery.dtype);                // [B, 1, Lq]
        return (perQuery * weight).sum() / (weight.sum() * perQuery.shape[1]).clamp_min(1);
    }

    /// <summary>
    /// The loss of one module: its attention relation (queries over keys) plus its value relation (values over
    /// values, over the key positions). The teacher's vectors carry no gradient.
    /// </summary>
    /// <param name="queryIsReal">[B, Lq] bool, false at padding</param>
    /// <param name="keyIsReal">[B, Lk] bool, false at padding</param>
    /// <param name="causal">self-attention of a decoder: position i relates to positions up to i only</param>
    public static Tensor ModuleLoss(Vectors student, Vectors teacher, int heads, Tensor queryIsReal, Tensor keyIsReal, bool causal)
    {
        var queries = student.Queries.shape[1];
        var keys = student.Keys.shape[1];
        if (!teacher.Queries.shape.SequenceEqual(student.Queries.shape[..2].Append(teacher.Queries.shape[2]))
            || teacher.Keys.shape[1] != keys || teacher.Values.shape[1] != keys)
            throw new ArgumentException($"the teacher's attention covers [{string.Join(", ", teacher.Queries.shape)}] queries and " +
                                        $"{teacher.Keys.shape[1]} keys, the student's [{string.Join(", ", student.Queries.shape)}] and {keys}");
        var attentionAllowed = Allowed(keyIsReal, queries, causal);
        var valueAllowed = Allowed(keyIsReal, keys, causal);
        var attention = Divergence(
            LogRelation(teacher.Queries.detach(), teacher.Keys.detach(), heads, attentionAllowed),
            LogRelation(student.Queries, student.Keys, heads, attentionAllowed), queryIsReal);
        var values = Divergence(
            LogRelation(teacher.Values.detach(), teacher.Values.detach(), heads, valueAllowed),
            LogRelation(student.Values, student.Values, heads, valueAllowed), keyIsReal);
        return attention + values;
    }

    /// <summary>[B, Lq, Lk]: real keys, and for causal self-attention only those at or before the query.</summary>
    private static Tensor Allowed(Tensor keyIsReal, long queries, bool causal)
    {
        var keys = keyIsReal.shape[1];
        var allowed = keyIsReal.unsqueeze(1).expand(keyIsReal.shape[0], queries, keys);
        return causal ? allowed.logical_and(ones(queries, keys, dtype: ScalarType.Bool, device: keyIsReal.device).tril()) : allowed;
    }

    /// <summary>[B, L] bool: position t of row b is real when t &lt; lengths[b].</summary>
    public static Tensor IsReal(IReadOnlyList<int> lengths, long width, Device device) =>
        arange(width, device: device).unsqueeze(0).lt(tensor(lengths.Select(l => (long)l).ToArray(), device: device).unsqueeze(1));
}
