using NUnit.Framework;
using Training.Shared.Objectives.Distillation;
using static TorchSharp.torch;

namespace Training.Tests.Objectives;

/// <summary>
/// MiniEnD's attention relations against plain double arithmetic: the relation itself, the KL between a teacher's and
/// a student's of different widths, padding and causality, and the gradient (central differences).
/// </summary>
public class AttentionRelationsTests
{
    private static Tensor Random3(int batch, int length, int dim, int seed, bool grad = false)
    {
        var random = new Random(seed);
        return tensor(Enumerable.Range(0, batch * length * dim).Select(_ => random.NextDouble() * 2 - 1).ToArray(), [batch, length, dim],
            requires_grad: grad);
    }

    private static AttentionRelations.Vectors Vectors(int batch, int queries, int keys, int dim, int seed, bool grad = false) =>
        new(Random3(batch, queries, dim, seed, grad), Random3(batch, keys, dim, seed + 1, grad), Random3(batch, keys, dim, seed + 2, grad));

    private static Tensor AllowAll(int batch, int queries, int keys) => ones(batch, queries, keys, dtype: ScalarType.Bool);

    [Test]
    public void LogRelation_IsTheSoftmaxOfScaledDotProducts_InEachRelationHead()
    {
        const int heads = 2, dim = 6, queries = 3, keys = 4;
        var a = Random3(1, queries, dim, 1);
        var b = Random3(1, keys, dim, 2);
        var relation = AttentionRelations.LogRelation(a, b, heads, AllowAll(1, queries, keys)).exp();   // [1, R, Lq, Lk]
        var width = dim / heads;
        for (var r = 0; r < heads; r++)
            for (var i = 0; i < queries; i++)
            {
                var scores = Enumerable.Range(0, keys).Select(j => Enumerable.Range(r * width, width)
                    .Sum(c => a[0, i, c].item<double>() * b[0, j, c].item<double>()) / Math.Sqrt(width)).ToArray();
                var max = scores.Max();
                var sum = scores.Sum(s => Math.Exp(s - max));
                for (var j = 0; j < keys; j++)
                    Assert.That(relation[0, r, i, j].item<double>(), Is.EqualTo(Math.Exp(scores[j] - max) / sum).Within(1e-12), $"head {r}, query {i}, key {j}");
            }
    }

    [Test]
    public void ModuleLoss_IsZeroForTheTeachersOwnVectors_AndPositiveForAnotherStudent_OfAnyWidth()
    {
        var queryIsReal = AttentionRelations.IsReal([5, 3], 5, CPU);
        var keyIsReal = AttentionRelations.IsReal([4, 2], 4, CPU);
        var teacher = Vectors(2, 5, 4, 12, seed: 10);
        var same = AttentionRelations.ModuleLoss(teacher, teacher, heads: 3, queryIsReal, keyIsReal, causal: false).item<double>();
        // A student of width 6 against the teacher's 12: both split into 3 relation heads.
        var narrow = AttentionRelations.ModuleLoss(Vectors(2, 5, 4, 6, seed: 20), teacher, heads: 3, queryIsReal, keyIsReal, causal: false).item<double>();
        Assert.That(same, Is.EqualTo(0).Within(1e-12));
        Assert.That(narrow, Is.GreaterThan(1e-3));
    }

    [Test]
    public void PaddedPositionsAndLaterPositions_TakeNoPart()
    {
        var isReal = AttentionRelations.IsReal([5, 3], 5, CPU);
        var teacher = Vectors(2, 5, 5, 8, seed: 1);
        var student = Vectors(2, 5, 5, 4, seed: 2);
        var loss = AttentionRelations.ModuleLoss(student, teacher, 2, isReal, isReal, causal: true).item<double>();
        // Row 1 is 3 long: what the student or the teacher holds at its positions 3 and 4 changes nothing.
        foreach (var vectors in new[] { student, teacher })
            foreach (var t in new[] { vectors.Queries, vectors.Keys, vectors.Values })
                t[1, TensorIndex.Slice(3, 5)] = t[1, TensorIndex.Slice(3, 5)] * 7 + 3;
        var changed = AttentionRelations.ModuleLoss(student, teacher, 2, isReal, isReal, causal: true).item<double>();
        Assert.That(changed, Is.EqualTo(loss).Within(1e-12));

        // Causal self-attention: position i relates to positions 0..i only, and padding keys get no weight.
        var allowed = isReal.unsqueeze(1).expand(2, 5, 5).logical_and(ones(5, 5, dtype: ScalarType.Bool).tril());
        var relation = AttentionRelations.LogRelation(student.Queries, student.Keys, 2, allowed).exp();
        Assert.That(relation[0, TensorIndex.Colon].triu(1).abs().max().item<double>(), Is.EqualTo(0));
        Assert.That(relation[1, TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(3, 5)].abs().max().item<double>(), Is.EqualTo(0));
        Assert.That(relation.sum(-1).sub(1).abs().max().item<double>(), Is.LessThan(1e-12), "each query's relation is a distribution");
    }

    [Test]
    public void Gradient_MatchesCentralDifferences()
    {
        var queryIsReal = AttentionRelations.IsReal([4, 2], 4, CPU);
        var keyIsReal = AttentionRelations.IsReal([3, 3], 3, CPU);
        var teacher = Vectors(2, 4, 3, 8, seed: 5);
        var student = Vectors(2, 4, 3, 4, seed: 6, grad: true);
        AttentionRelations.ModuleLoss(student, teacher, 2, queryIsReal, keyIsReal, causal: false).backward();

        const double h = 1e-6;
        foreach (var (name, t) in new[] { ("queries", student.Queries), ("keys", student.Keys), ("values", student.Values) })
        {
            var analytic = t.grad!.clone();
            var flat = t.detach().view(-1);
            for (var i = 0; i < flat.shape[0]; i += 3)
            {
                double At(double delta)
                {
                    using var _ = no_grad();
                    var original = flat[i].item<double>();
                    flat[i] = original + delta;
                    var value = AttentionRelations.ModuleLoss(student, teacher, 2, queryIsReal, keyIsReal, causal: false).item<double>();
                    flat[i] = original;
                    return value;
                }
                var numeric = (At(h) - At(-h)) / (2 * h);
                Assert.That(analytic.view(-1)[i].item<double>(), Is.EqualTo(numeric).Within(1e-6), $"d loss / d {name}[{i}]");
            }
        }
    }

    [Test]
    public void RelationHeadsThatDoNotDivideAWidth_AreRefusedNamingTheKey()
    {
        var teacher = Vectors(1, 3, 3, 10, seed: 1);
        var student = Vectors(1, 3, 3, 8, seed: 2);
        var isReal = AttentionRelations.IsReal([3], 3, CPU);
        var error = Assert.Throws<ArgumentException>(() => AttentionRelations.ModuleLoss(student, teacher, 4, isReal, isReal, causal: false));
        Assert.That(error!.Message, Does.Contain("distill.relation_heads 4 does not divide the attention width 10"));
    }
}
