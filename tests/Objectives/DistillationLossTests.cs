using NUnit.Framework;
using TorchSharp;
using Training.Shared.Objectives.Distillation;
using static TorchSharp.torch;

namespace Training.Tests.Objectives;

/// <summary>
/// The distillation divergences against plain double arithmetic: values, gradients (central differences), the T^2
/// scaling, masking, top-k teachers and vocabulary truncation.
/// </summary>
public class DistillationLossTests
{
    private static readonly DistillationDivergence[] All = [DistillationDivergence.ForwardKl, DistillationDivergence.ReverseKl, DistillationDivergence.Jsd];
    private const double Beta = 0.3;

    // ---- reference arithmetic, in doubles ----

    private static double[] Softmax(double[] logits, double temperature = 1)
    {
        var max = logits.Max();
        var e = logits.Select(x => Math.Exp((x - max) / temperature)).ToArray();
        var sum = e.Sum();
        return e.Select(x => x / sum).ToArray();
    }

    private static double Kl(double[] a, double[] b) => a.Zip(b).Sum(x => x.First > 0 ? x.First * Math.Log(x.First / x.Second) : 0);

    private static double Reference(double[] p, double[] q, DistillationDivergence divergence, double beta = Beta) => divergence switch
    {
        DistillationDivergence.ForwardKl => Kl(p, q),
        DistillationDivergence.ReverseKl => Kl(q, p),
        _ => beta * Kl(p, p.Zip(q, (x, y) => beta * x + (1 - beta) * y).ToArray())
             + (1 - beta) * Kl(q, p.Zip(q, (x, y) => beta * x + (1 - beta) * y).ToArray()),
    };

    /// <summary>The k + 1 buckets: the entries at <paramref name="top"/>, then the rest's total.</summary>
    private static double[] Bucketed(double[] distribution, int[] top) =>
        [.. top.Select(i => distribution[i]), distribution.Where((_, i) => !top.Contains(i)).Sum()];

    private static int[] TopIds(double[] p, int k) => Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).Take(k).ToArray();

    private static double[][] Rows(int rows, int vocab, int seed, double scale = 2)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, rows).Select(_ => Enumerable.Range(0, vocab).Select(_ => scale * (random.NextDouble() * 2 - 1)).ToArray()).ToArray();
    }

    // ---- tensors ----

    private static Tensor Matrix(double[][] rows, bool grad = false) =>
        tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length], requires_grad: grad);

    private static Tensor Matrix32(double[][] rows) =>
        tensor(rows.SelectMany(r => r.Select(x => (float)x)).ToArray(), [rows.Length, rows[0].Length]);

    private static Tensor Mask(params bool[] kept) => tensor(kept);

    private static TeacherTarget FullTeacher(double[][] probabilities) => TeacherTarget.Full(Matrix(probabilities.Select(r => r.Select(x => Math.Log(x)).ToArray()).ToArray()));

    private static TeacherTarget TopKTeacher(double[][] probabilities, int k, double? tailOverride = null)
    {
        var ids = probabilities.Select(p => TopIds(p, k)).ToArray();
        var values = probabilities.Select((p, r) => ids[r].Select(i => Math.Log(p[i])).ToArray()).ToArray();
        var tails = probabilities.Select((p, r) => tailOverride ?? Math.Log(Bucketed(p, ids[r])[^1])).ToArray();
        return TeacherTarget.TopK(Matrix(values), tensor(ids.SelectMany(r => r.Select(i => (long)i)).ToArray(), [ids.Length, k]), tensor(tails));
    }

    private static double Value(Tensor scalar) => scalar.to(ScalarType.Float64).item<double>();

    // ---- values ----

    [Test]
    public void ForwardKl_HandComputedV3_IsLn3MinusOneAndAHalfLn2()
    {
        using var scope = NewDisposeScope();
        // p = (1/2, 1/4, 1/4) against a uniform student: 1/2 ln(3/2) + 2 * 1/4 ln(3/4) = ln 3 - 1.5 ln 2.
        using var teacher = TeacherTarget.FromArrays(1, 3, [(float)Math.Log(0.5), (float)Math.Log(0.25), (float)Math.Log(0.25)], CPU);

        var loss = DistillationLoss.Divergence(zeros(1, 3), teacher, Mask(true), DistillationDivergence.ForwardKl, Beta, 1);

        Assert.That(Value(loss), Is.EqualTo(Math.Log(3) - 1.5 * Math.Log(2)).Within(1e-6));
    }

    [TestCaseSource(nameof(All))]
    public void Divergence_SmallV3Examples_MatchDoubleArithmetic(DistillationDivergence divergence)
    {
        using var scope = NewDisposeScope();
        double[][] p = [[0.7, 0.2, 0.1], [0.05, 0.15, 0.8]];
        double[][] logits = [[0.3, -1.2, 2.0], [1.0, 1.0, -0.5]];
        using var teacher = TeacherTarget.FromArrays(2, 3, p.SelectMany(r => r.Select(x => (float)Math.Log(x))).ToArray(), CPU);

        var loss = DistillationLoss.Divergence(Matrix32(logits), teacher, Mask(true, true), divergence, Beta, 1);

        var expected = (Reference(p[0], Softmax(logits[0]), divergence) + Reference(p[1], Softmax(logits[1]), divergence)) / 2;
        Assert.That(loss.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(loss.dim(), Is.EqualTo(0));
        Assert.That(Value(loss), Is.EqualTo(expected).Within(1e-6));
    }

    [TestCase(0.1)]
    [TestCase(0.5)]
    [TestCase(0.9)]
    public void Jsd_BetaHalf_IsSymmetricAndOtherBetasMatchReference(double beta)
    {
        using var scope = NewDisposeScope();
        double[] p = [0.6, 0.3, 0.1];
        double[] logits = [0.0, 1.0, -1.0];
        using var teacher = FullTeacher([p]);

        var loss = DistillationLoss.Divergence(Matrix([logits]), teacher, Mask(true), DistillationDivergence.Jsd, beta, 1);

        var q = Softmax(logits);
        Assert.That(Value(loss), Is.EqualTo(Reference(p, q, DistillationDivergence.Jsd, beta)).Within(1e-12));
        // JSD_beta(p, q) = JSD_(1-beta)(q, p): swapping the roles and the weight gives the same number.
        Assert.That(Value(loss), Is.EqualTo(Reference(q, p, DistillationDivergence.Jsd, 1 - beta)).Within(1e-12));
    }

    [TestCaseSource(nameof(All))]
    public void Divergence_TeacherWithAZeroProbability_StaysFiniteWithFiniteGradient(DistillationDivergence divergence)
    {
        using var scope = NewDisposeScope();
        double[] p = [0.5, 0.5, 0.0];
        var logits = Matrix([[0.2, -0.4, 1.0]], grad: true);
        using var teacher = FullTeacher([p]);

        var loss = DistillationLoss.Divergence(logits, teacher, Mask(true), divergence, Beta, 1);
        loss.backward();

        Assert.That(double.IsFinite(Value(loss)), Is.True, $"value {Value(loss)}");
        Assert.That(logits.grad!.isfinite().all().item<bool>(), Is.True, "gradient");
        if (divergence != DistillationDivergence.ReverseKl)   // reverse KL against p = 0 is infinite; the loss floors it
            Assert.That(Value(loss), Is.EqualTo(Reference(p, Softmax([0.2, -0.4, 1.0]), divergence)).Within(1e-12));
        else
            Assert.That(Value(loss), Is.GreaterThan(10), "the student's mass on a token the teacher rules out is punished hard");
    }

    [Test]
    public void Divergence_Temperature2_IsFourTimesTheDivergenceOfTheTemperedDistributions([ValueSource(nameof(All))] DistillationDivergence divergence)
    {
        using var scope = NewDisposeScope();
        var logits = Rows(3, 5, seed: 1, scale: 3);
        // The teacher's log-probabilities come already tempered, as the teacher computes them.
        var p = Rows(3, 5, seed: 2, scale: 3).Select(r => Softmax(r, 2)).ToArray();
        using var teacher = FullTeacher(p);

        var loss = DistillationLoss.Divergence(Matrix(logits), teacher, Mask(true, true, true), divergence, Beta, temperature: 2);

        var unscaled = Enumerable.Range(0, 3).Average(r => Reference(p[r], Softmax(logits[r], 2), divergence));
        Assert.That(Value(loss), Is.EqualTo(4 * unscaled).Within(1e-12));
        Assert.That(Value(loss), Is.Not.EqualTo(unscaled).Within(1e-6), "the scaling is applied");
    }

    // ---- gradients ----

    public static IEnumerable<TestCaseData> GradientCases() =>
        All.SelectMany(d => new[] { new TestCaseData(d, 0).SetArgDisplayNames(d.ToString(), "full"), new TestCaseData(d, 2).SetArgDisplayNames(d.ToString(), "top2"), new TestCaseData(d, 5).SetArgDisplayNames(d.ToString(), "top5") });

    /// <param name="k">0 for a full teacher.</param>
    [TestCaseSource(nameof(GradientCases))]
    public void Divergence_Gradient_MatchesCentralDifferences(DistillationDivergence divergence, int k)
    {
        using var scope = NewDisposeScope();
        const int rows = 3, vocab = 5;
        const double temperature = 1.5;
        var logits = Rows(rows, vocab, seed: 7, scale: 2);
        var p = Rows(rows, vocab, seed: 8, scale: 2).Select(r => Softmax(r, temperature)).ToArray();
        using var teacher = k == 0 ? FullTeacher(p) : TopKTeacher(p, k, tailOverride: k == vocab ? double.NegativeInfinity : null);
        var mask = Mask(true, false, true);

        double Loss(double[][] at)
        {
            using var inner = NewDisposeScope();
            using var noGrad = no_grad();
            return Value(DistillationLoss.Divergence(Matrix(at), teacher, mask, divergence, Beta, temperature));
        }

        var input = Matrix(logits, grad: true);
        var loss = DistillationLoss.Divergence(input, teacher, mask, divergence, Beta, temperature);
        loss.backward();
        var analytic = input.grad!.data<double>().ToArray();

        // The value too, against the bucketed reference for top-k teachers.
        var kept = new[] { 0, 2 };
        var expected = temperature * temperature * kept.Average(r =>
        {
            var q = Softmax(logits[r], temperature);
            if (k == 0) return Reference(p[r], q, divergence);
            var ids = TopIds(p[r], k);
            return Reference(Bucketed(p[r], ids), Bucketed(q, ids), divergence);
        });
        Assert.That(Value(loss), Is.EqualTo(expected).Within(1e-9), "value");

        const double h = 1e-5;
        for (var r = 0; r < rows; r++)
            for (var v = 0; v < vocab; v++)
            {
                var plus = logits.Select(row => row.ToArray()).ToArray();
                var minus = logits.Select(row => row.ToArray()).ToArray();
                plus[r][v] += h;
                minus[r][v] -= h;
                var numeric = (Loss(plus) - Loss(minus)) / (2 * h);
                Assert.That(analytic[r * vocab + v], Is.EqualTo(numeric).Within(1e-7), $"d loss / d logit[{r}, {v}]");
            }
        Assert.That(analytic.Skip(vocab).Take(vocab), Is.All.EqualTo(0.0), "the masked row gets no gradient");
        Assert.That(analytic.Any(g => Math.Abs(g) > 1e-4), Is.True, "some gradient reaches the student");
    }

    // ---- masking ----

    [TestCaseSource(nameof(All))]
    public void Divergence_MaskedPosition_ChangesNeitherValueNorGetsGradient(DistillationDivergence divergence)
    {
        using var scope = NewDisposeScope();
        var logits = Rows(3, 4, seed: 3);
        var p = Rows(3, 4, seed: 4).Select(r => Softmax(r)).ToArray();
        using var teacher = FullTeacher(p);
        using var keptTeacher = FullTeacher([p[0], p[2]]);

        var input = Matrix(logits, grad: true);
        var masked = DistillationLoss.Divergence(input, teacher, Mask(true, false, true), divergence, Beta, 1);
        masked.backward();
        var onlyKept = DistillationLoss.Divergence(Matrix([logits[0], logits[2]]), keptTeacher, Mask(true, true), divergence, Beta, 1);
        // Wild logits on the masked row (a padded position) change nothing.
        var wild = logits.Select(r => r.ToArray()).ToArray();
        wild[1] = [1e4, -1e4, 0, 3e3];
        var withWildPad = DistillationLoss.Divergence(Matrix(wild), teacher, Mask(true, false, true), divergence, Beta, 1);

        Assert.Multiple(() =>
        {
            Assert.That(Value(masked), Is.EqualTo(Value(onlyKept)).Within(1e-12), "the mean is over the kept positions only");
            Assert.That(Value(withWildPad), Is.EqualTo(Value(masked)).Within(1e-12));
            Assert.That(input.grad![1].abs().max().item<double>(), Is.EqualTo(0.0), "masked row");
            Assert.That(input.grad![0].abs().max().item<double>(), Is.GreaterThan(0.0), "kept row");
        });
    }

    [TestCaseSource(nameof(All))]
    public void Divergence_AllFalseMask_IsZeroNotNaN(DistillationDivergence divergence)
    {
        using var scope = NewDisposeScope();
        var input = Matrix(Rows(2, 4, seed: 5), grad: true);
        using var teacher = FullTeacher(Rows(2, 4, seed: 6).Select(r => Softmax(r)).ToArray());

        var loss = DistillationLoss.Divergence(input, teacher, Mask(false, false), divergence, Beta, 1);
        loss.backward();

        Assert.That(Value(loss), Is.EqualTo(0.0));
        Assert.That(input.grad!.abs().max().item<double>(), Is.EqualTo(0.0));
    }

    // ---- top-k ----

    [TestCaseSource(nameof(All))]
    public void TopK_KEqualToVocab_EqualsFull(DistillationDivergence divergence)
    {
        using var scope = NewDisposeScope();
        const int vocab = 6;
        var logits = Matrix32(Rows(4, vocab, seed: 9, scale: 3));
        var p = Rows(4, vocab, seed: 10, scale: 3).Select(r => Softmax(r)).ToArray();
        using var full = TeacherTarget.FromArrays(4, vocab, p.SelectMany(r => r.Select(x => (float)Math.Log(x))).ToArray(), CPU);
        var ids = p.Select(r => TopIds(r, vocab)).ToArray();
        // The teacher's tail after all V tokens is empty (-inf), or at float rounding's level.
        using var topExact = TeacherTarget.FromArrays(4, vocab, p.SelectMany((r, i) => ids[i].Select(j => (float)Math.Log(r[j]))).ToArray(),
            ids.SelectMany(r => r).ToArray(), Enumerable.Repeat(float.NegativeInfinity, 4).ToArray(), CPU);
        using var topRounded = TeacherTarget.FromArrays(4, vocab, p.SelectMany((r, i) => ids[i].Select(j => (float)Math.Log(r[j]))).ToArray(),
            ids.SelectMany(r => r).ToArray(), Enumerable.Repeat((float)Math.Log(1e-9), 4).ToArray(), CPU);
        var mask = Mask(true, true, false, true);

        var expected = Value(DistillationLoss.Divergence(logits, full, mask, divergence, Beta, 1));

        Assert.That(Value(DistillationLoss.Divergence(logits, topExact, mask, divergence, Beta, 1)), Is.EqualTo(expected).Within(1e-5));
        Assert.That(Value(DistillationLoss.Divergence(logits, topRounded, mask, divergence, Beta, 1)), Is.EqualTo(expected).Within(1e-5));
        Assert.That(expected, Is.GreaterThan(1e-3), "a non-trivial comparison");
    }

    [TestCaseSource(nameof(All))]
    public void TopK_SmallK_IsCloseToButBelowFull(DistillationDivergence divergence)
    {
        using var scope = NewDisposeScope();
        const int vocab = 8;
        var logits = Matrix(Rows(4, vocab, seed: 11, scale: 2));
        // A peaked teacher: its top 3 hold most of the mass.
        var p = Rows(4, vocab, seed: 12, scale: 1).Select((r, i) => { r[i] += 4; r[i + 1] += 3; r[i + 2] += 2; return Softmax(r); }).ToArray();
        using var full = FullTeacher(p);
        using var top = TopKTeacher(p, 3);
        var mask = Mask(true, true, true, true);

        var fullValue = Value(DistillationLoss.Divergence(logits, full, mask, divergence, Beta, 1));
        var topValue = Value(DistillationLoss.Divergence(logits, top, mask, divergence, Beta, 1));

        // Merging buckets never increases an f-divergence (data processing), and here it loses only a little.
        Assert.That(topValue, Is.LessThan(fullValue - 1e-4));
        Assert.That(topValue, Is.GreaterThan(0.5 * fullValue));
    }

    // ---- truncation ----

    [Test]
    public void TruncatedTo_Full_CutsAndRenormalizes()
    {
        using var scope = NewDisposeScope();
        double[][] p = [[0.1, 0.2, 0.3, 0.25, 0.15], [0.5, 0.1, 0.1, 0.1, 0.2]];
        using var teacher = FullTeacher(p);

        using var cut = teacher.TruncatedTo(3);

        Assert.That(cut.LogProbabilities.shape, Is.EqualTo(new long[] { 2, 3 }));
        var values = cut.LogProbabilities.data<double>().ToArray();
        for (var r = 0; r < 2; r++)
            for (var v = 0; v < 3; v++)
                Assert.That(values[r * 3 + v], Is.EqualTo(Math.Log(p[r][v] / p[r].Take(3).Sum())).Within(1e-12), $"[{r}, {v}]");
        Assert.That(teacher.LogProbabilities.shape, Is.EqualTo(new long[] { 2, 5 }), "the original is untouched");
        Assert.Throws<ArgumentOutOfRangeException>(() => teacher.TruncatedTo(6));
    }

    [TestCaseSource(nameof(All))]
    public void TruncatedTo_TopK_MovesCutEntriesIntoTheTailAndTheLossSkipsThem(DistillationDivergence divergence)
    {
        using var scope = NewDisposeScope();
        // Teacher over 5 tokens; the student has only 3. Row 0's top 3 are ids 4, 1, 0 (p = 0.2, 0.25, 0.05, 0.1, 0.4);
        // row 1's are 2, 1, 3 (p = 0.15, 0.25, 0.35, 0.2, 0.05), so its cut entry's placeholder id 0 is not a top id.
        double[][] values = [[Math.Log(0.4), Math.Log(0.25), Math.Log(0.2)], [Math.Log(0.35), Math.Log(0.25), Math.Log(0.2)]];
        using var teacher = TeacherTarget.TopK(Matrix(values), tensor(new long[] { 4, 1, 0, 2, 1, 3 }, [2, 3]), tensor(new[] { Math.Log(0.15), Math.Log(0.2) }));

        using var cut = teacher.TruncatedTo(3);

        var tails = cut.TailLogMass!.data<double>().ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(tails[0], Is.EqualTo(Math.Log(0.15 + 0.4)).Within(1e-12), "row 0: id 4 joins the tail");
            Assert.That(tails[1], Is.EqualTo(Math.Log(0.2 + 0.2)).Within(1e-12), "row 1: id 3 joins the tail");
            Assert.That(cut.Valid!.data<bool>().ToArray(), Is.EqualTo(new[] { false, true, true, true, true, false }));
            Assert.That(cut.Indices!.data<long>().ToArray().All(i => i < 3), Is.True, "every id is inside the student's vocab");
        });

        // The loss compares the kept buckets and the tails: row 0 {1, 0, rest = {2}}, row 1 {2, 1, rest = {0}}.
        double[][] logits = [[0.5, -0.3, 1.1], [-0.2, 0.4, 0.9]];
        var input = Matrix(logits, grad: true);
        var loss = DistillationLoss.Divergence(input, cut, Mask(true, true), divergence, Beta, 1);
        loss.backward();

        var q0 = Softmax(logits[0]);
        var q1 = Softmax(logits[1]);
        var expected = (Reference([0.25, 0.2, 0.55], [q0[1], q0[0], q0[2]], divergence) + Reference([0.35, 0.25, 0.4], [q1[2], q1[1], q1[0]], divergence)) / 2;
        Assert.That(Value(loss), Is.EqualTo(expected).Within(1e-12));
        Assert.That(input.grad!.isfinite().all().item<bool>(), Is.True);
    }

    // ---- arguments ----

    [TestCase(0.0)]
    [TestCase(1.0)]
    [TestCase(-0.5)]
    [TestCase(1.5)]
    [TestCase(double.NaN)]
    public void Jsd_BetaOutsideZeroOne_Throws(double beta)
    {
        using var scope = NewDisposeScope();
        using var teacher = FullTeacher([[0.5, 0.5]]);
        Assert.Throws<ArgumentOutOfRangeException>(() => DistillationLoss.Divergence(zeros(1, 2), teacher, Mask(true), DistillationDivergence.Jsd, beta, 1));
    }

    [Test]
    public void Divergence_FullTeacherOfAnotherVocab_Throws()
    {
        using var scope = NewDisposeScope();
        using var teacher = FullTeacher([[0.2, 0.3, 0.5]]);
        var error = Assert.Throws<ArgumentException>(() => DistillationLoss.Divergence(zeros(1, 4), teacher, Mask(true), DistillationDivergence.ForwardKl, Beta, 1))!;
        Assert.That(error.Message, Does.Contain("TruncatedTo"));
    }
}
