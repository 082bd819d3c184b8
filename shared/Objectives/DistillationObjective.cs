using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Objectives.Distillation;
using Training.Shared.Teaching;
using static TorchSharp.torch;
using Generator = Training.Shared.Models.Generator;

namespace Training.Shared.Objectives;

/// <summary>
/// objective.kind: distill. An encoder-decoder student learns from a frozen decoder-only teacher on the task's prompts:
/// on an on-policy micro-batch the current student samples each target, otherwise the gold target is used (off-policy
/// KD). The teacher scores every target token (through <paramref name="scoreWithTeachers"/>: the teachers' socket
/// streams), aligned as SPEC.md says: teacher input = prompt left-padded to S, then the target; its logits for target
/// token t sit at S - 1 + t; the student's decoder reads [BOS] + target[:-1]. The loss is
/// alpha * D(teacher, student) * T^2 over the target tokens (pads masked) + (1 - alpha) * CE on the gold target.
/// With distill.relations an encoder-decoder teacher reads the student's own encoder and decoder inputs instead, and
/// MiniEnD adds relation_weight times the last layer's attention relation losses (<see cref="AttentionRelations"/>).
/// </summary>
public sealed class DistillationObjective : ITaskObjective
{
    private readonly DistillSpec _distill;
    private readonly SpecialTokens _special;
    private readonly long _seed;
    private readonly int _sourceLength;
    private readonly int _targetLength;
    private readonly Func<TeacherScoreRequest, TeacherScores> _scoreWithTeachers;
    private readonly Seq2SeqObjective _gold;
    private long _requests;

    /// <param name="seed">The experiment's seed (on-policy choices and samples derive from it).</param>
    public DistillationObjective(DistillSpec distill, ObjectiveSpec objective, long seed, SpecialTokens special,
        Func<TeacherScoreRequest, TeacherScores> scoreWithTeachers)
    {
        _distill = distill;
        _special = special;
        _seed = seed;
        _sourceLength = objective.InputLength;
        // On span-corrupted text the targets are the span targets, as long as span corruption makes them.
        _targetLength = distill.Data == DistillData.SpanCorruption
            ? SpanCorruption.ComputeLengths(objective.InputLength, objective.NoiseDensity, objective.MeanSpanLength).TargetLength
            : objective.TargetLength;
        _scoreWithTeachers = scoreWithTeachers;
        _gold = new Seq2SeqObjective(special);
    }

    public string Name => "distill";

    /// <summary>Whether the micro-batch starting at global example <paramref name="firstIndex"/> trains on the student's
    /// own samples: a function of the seed and the examples, so a resumed or re-split run makes the same choice.</summary>
    public bool IsOnPolicy(long firstIndex) =>
        _distill.OnPolicy >= 1 || (_distill.OnPolicy > 0 && ObjectiveMath.ExampleSeed(_seed ^ 0x5EED_D157, firstIndex) % 1_000_000 < _distill.OnPolicy * 1_000_000);

    public ObjectiveOutput Compute(ILanguageModel model, IReadOnlyList<TaskTokens> examples, IReadOnlyList<long> globalIndices, Device device)
    {
        if (model is not EncoderDecoderModel student)
            throw new ArgumentException($"distill trains an encoder-decoder student, not {model.Config.Architecture}");
        var onPolicy = IsOnPolicy(globalIndices[0]);
        var targets = onPolicy ? Sample(student, examples, globalIndices[0], device) : examples.Select(e => e.Target).ToList();

        var alignment = examples.Select((e, i) => SequenceAlignment.Align(e.Prompt, targets[i], _sourceLength, _special.Pad, _special.Bos)).ToList();
        var encoderRows = examples.Select(e => e.Prompt).ToList();
        var transport = _distill.Transport == TeacherTransportKind.TopK ? TeacherTransport.TopK : TeacherTransport.Full;
        var request = _distill.EncoderDecoderTeacher
            // An encoder-decoder teacher reads what the student reads: position t of its decoder predicts target token t.
            ? new TeacherScoreRequest(Interlocked.Increment(ref _requests), encoderRows, new int[alignment.Count],
                alignment.Select(a => a.ScoreCount).ToArray(), transport, _distill.TopK, (float)_distill.Temperature)
            {
                DecoderRows = alignment.Select(a => a.StudentDecoderInput).ToList(),
                Attention = Modules,
            }
            : new TeacherScoreRequest(Interlocked.Increment(ref _requests), alignment.Select(a => a.TeacherInput).ToList(),
                alignment.Select(a => a.ScoreFrom).ToArray(), alignment.Select(a => a.ScoreCount).ToArray(), transport, _distill.TopK,
                (float)_distill.Temperature);
        var scores = _scoreWithTeachers(request);

        // Student logits at every scored target position, in the teacher's order (row by row).
        var encoderInput = TaskBatch.RightPadded(encoderRows, _special.Pad, device);
        var decoderInput = TaskBatch.RightPadded(alignment.Select(a => a.StudentDecoderInput).ToList(), _special.Pad, device);
        var modules = Modules;
        var (logits, attention) = student.ForwardCapturing(encoderInput, decoderInput, modules.HasFlag(AttentionModules.EncoderSelf),
            modules.HasFlag(AttentionModules.DecoderSelf), modules.HasFlag(AttentionModules.Cross));   // [B, T, V]
        var studentLogits = cat(alignment.Select((a, i) => logits[i].narrow(0, 0, a.ScoreCount)).ToArray(), 0); // [N, V]
        // Where the vocabularies differ (same tokenizer, padded differently) both sides are cut to the smaller (SPEC.md).
        var positions = (int)studentLogits.shape[0];
        var vocab = (int)Math.Min(studentLogits.shape[1], scores.Vocab);
        using var teacher = scores.Transport == TeacherTransport.Full
            ? TeacherTarget.FromArrays(positions, scores.Vocab, scores.Values, device)
            : TeacherTarget.FromArrays(positions, scores.K, scores.Values, scores.Indices!, scores.Tail!, device);
        using var truncated = vocab < scores.Vocab ? teacher.TruncatedTo(vocab) : null;
        // Every scored position is a real target token: the alignment scores exactly each row's target, no padding.
        var mask = ones(positions, dtype: ScalarType.Bool, device: device);
        var divergence = DistillationLoss.Divergence(studentLogits.narrow(1, 0, vocab), truncated ?? teacher, mask, Divergence,
            _distill.Beta, _distill.Temperature);

        // Cross-entropy on the gold target: the same forward pass when the targets were the gold ones.
        var gold = onPolicy ? _gold.Compute(model, examples, globalIndices, device) : GoldFrom(logits, examples, device);
        var loss = _distill.Alpha * divergence + (1 - _distill.Alpha) * gold.Loss;
        if (modules != AttentionModules.None)
            loss = loss + _distill.RelationWeight * RelationLoss(student, attention, scores, encoderRows, alignment, encoderInput, decoderInput, device);
        return gold with { Loss = loss, ProcessedTokens = gold.ProcessedTokens + encoderInput.numel() + decoderInput.numel() };
    }

    /// <summary>The last-layer attention modules whose relations the student matches (SPEC.md section 4).</summary>
    private AttentionModules Modules => _distill.Relations switch
    {
        DistillRelations.MiniEndD => AttentionModules.DecoderSelf | AttentionModules.Cross,
        DistillRelations.MiniEndE => AttentionModules.DecoderSelf | AttentionModules.EncoderSelf,
        _ => AttentionModules.None,
    };

    /// <summary>Sum over the modules of the attention and value relation losses against the teacher's vectors.</summary>
    private Tensor RelationLoss(EncoderDecoderModel student, LastLayerAttention attention, TeacherScores scores, List<long[]> encoderRows,
        List<AlignedExample> alignment, Tensor encoderInput, Tensor decoderInput, Device device)
    {
        var heads = _distill.RelationHeads == 0 ? student.Config.Heads : _distill.RelationHeads;
        var encoderIsReal = AttentionRelations.IsReal(encoderRows.Select(r => r.Length).ToList(), encoderInput.shape[1], device);
        var decoderIsReal = AttentionRelations.IsReal(alignment.Select(a => a.StudentDecoderInput.Length).ToList(), decoderInput.shape[1], device);
        Tensor? total = null;
        foreach (var (module, probe, queries, keys, causal) in new[]
                 {
                     (AttentionModules.EncoderSelf, attention.EncoderSelf, encoderIsReal, encoderIsReal, false),
                     (AttentionModules.DecoderSelf, attention.DecoderSelf, decoderIsReal, decoderIsReal, true),
                     (AttentionModules.Cross, attention.Cross, decoderIsReal, encoderIsReal, false),
                 })
        {
            if (probe is null) continue;
            var sent = scores.Attention.FirstOrDefault(a => a.Module == module)
                       ?? throw new InvalidDataException($"the teacher sent no {module} attention vectors, and distill.relations {_distill.Relations} needs them");
            var teacher = new AttentionRelations.Vectors(
                ObjectiveMath.FloatTensor(sent.Queries, [sent.Batch, sent.QueryLength, sent.Dim], device),
                ObjectiveMath.FloatTensor(sent.Keys, [sent.Batch, sent.KeyLength, sent.Dim], device),
                ObjectiveMath.FloatTensor(sent.Values, [sent.Batch, sent.KeyLength, sent.Dim], device));
            var own = new AttentionRelations.Vectors(probe.Queries!, probe.Keys!, probe.Values!);
            var loss = AttentionRelations.ModuleLoss(own, teacher, heads, queries, keys, causal);
            total = total is null ? loss : total + loss;
        }
        return total!;
    }

    private DistillationDivergence Divergence => _distill.Divergence switch
    {
        DistillDivergenceKind.ReverseKl => DistillationDivergence.ReverseKl,
        DistillDivergenceKind.Jsd => DistillationDivergence.Jsd,
        _ => DistillationDivergence.ForwardKl,
    };

    /// <summary>Targets the current student samples (temperature, top-k, up to max_new_tokens and target_length),
    /// seeded by the micro-batch's first example so the samples do not depend on the world size.</summary>
    private List<long[]> Sample(EncoderDecoderModel student, IReadOnlyList<TaskTokens> examples, long firstIndex, Device device)
    {
        var options = new GenerationOptions(Math.Min(_distill.MaxNewTokens, _targetLength), _distill.SampleTemperature, _distill.SampleTopK,
            Seed: unchecked((long)ObjectiveMath.ExampleSeed(_seed, firstIndex)));
        using var encoderInput = TaskBatch.RightPadded(examples.Select(e => e.Prompt).ToList(), _special.Pad, device);
        return Generator.Generate(student, encoderInput, _special.Bos, _special.Eos, options).Select(s => s.Length == 0 ? [(long)_special.Eos] : s).ToList();
    }

    private ObjectiveOutput GoldFrom(Tensor logits, IReadOnlyList<TaskTokens> examples, Device device)
    {
        var width = (int)logits.shape[1];
        var labels = ObjectiveMath.ToTensor(examples.Select(e => TaskBatch.Labels(e.Target, width)).ToList(), device);
        var (loss, correct, counted) = ObjectiveMath.CrossEntropy(logits, labels);
        return new ObjectiveOutput(loss, correct, counted, 0);
    }
}
