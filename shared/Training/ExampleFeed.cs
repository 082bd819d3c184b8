using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using static TorchSharp.torch;

namespace Training.Shared.Training;

/// <summary>
/// A trainer's data and how its objective scores it: packed text windows (span corruption, CLM, MLM) or task examples
/// (seq2seq, distillation). Training reads a deterministic stream whose n-th example does not depend on the world
/// size; evaluation scores the same first examples of the eval split every time (read once, at the start, so a damaged
/// eval shard fails the trial before its first step).
/// </summary>
public abstract class ExampleFeed : IDisposable
{
    /// <summary>The stream position a checkpoint records.</summary>
    public abstract DataCursor Cursor { get; }

    /// <summary>Eval examples available (eval_batches x micro_batch, or none without eval data).</summary>
    public abstract int EvalExamples { get; }

    /// <summary>Continues the training stream from a checkpoint's cursor.</summary>
    public abstract void ResumeFrom(DataCursor cursor);

    /// <summary>Scores training examples [first, first + count): the stream skips to <paramref name="first"/>, so every
    /// rank reads the whole global stream and keeps its own slice.</summary>
    public abstract ObjectiveOutput Train(ILanguageModel model, long first, int count, Device device);

    /// <summary>Scores eval examples [first, first + count) (call under no_grad).</summary>
    public abstract ObjectiveOutput Evaluate(ILanguageModel model, int first, int count, Device device);

    /// <summary>How many of eval examples [first, first + count) the model generates exactly (greedy); null where exact
    /// match means nothing (packed text).</summary>
    public virtual int? ExactMatches(ILanguageModel model, int first, int count, Device device) => null;

    public abstract void Dispose();

    /// <param name="taskObjective">The task objective to score with (distillation brings its teachers); null builds
    /// the spec's own.</param>
    public static ExampleFeed For(ExperimentSpec spec, ITokenizer tokenizer, IReadOnlyList<IShardSource> train,
        IReadOnlyList<IShardSource> eval, bool readEval, ITaskObjective? taskObjective = null)
    {
        var evalCount = readEval && eval.Count > 0 ? spec.Train.EvalBatches * spec.Train.MicroBatch : 0;
        if (spec.SpanCorruptedText)
            return new SpanCorruptedTextFeed(spec, tokenizer, taskObjective ?? throw new ArgumentException("distillation brings its own objective (its teachers)"),
                train, eval, evalCount);
        return spec.Objective.ReadsTasks
            ? new TaskFeed(spec, tokenizer, taskObjective ?? ObjectiveFactory.CreateTask(spec.Objective, tokenizer), train, eval, evalCount)
            : new WindowFeed(spec, tokenizer, TrialComponents.Objective(spec, tokenizer), train, eval, evalCount);
    }
}

/// <summary>Packed text windows from <see cref="PackedExampleStream"/>.</summary>
internal sealed class WindowFeed : ExampleFeed
{
    private readonly ITrainingObjective _objective;
    private readonly IReadOnlyList<IShardSource> _train;
    private readonly ITokenizer _tokenizer;
    private readonly long _seed;
    private readonly int[][] _eval;
    private PackedExampleStream _stream;

    public WindowFeed(ExperimentSpec spec, ITokenizer tokenizer, ITrainingObjective objective, IReadOnlyList<IShardSource> train,
        IReadOnlyList<IShardSource> eval, int evalCount)
    {
        (_objective, _train, _tokenizer, _seed) = (objective, train, tokenizer, spec.Seed);
        _eval = new int[evalCount][];
        if (evalCount > 0)
        {
            using var stream = new PackedExampleStream(eval, tokenizer, objective.WindowLength, spec.Seed, shuffle: false);
            for (var i = 0; i < evalCount; i++) _eval[i] = stream.Next();
        }
        _stream = new PackedExampleStream(train, tokenizer, objective.WindowLength, spec.Seed, shuffle: true);
    }

    public override DataCursor Cursor => _stream.Cursor;
    public override int EvalExamples => _eval.Length;

    public override void ResumeFrom(DataCursor cursor)
    {
        var resumed = new PackedExampleStream(_train, _tokenizer, _objective.WindowLength, _seed, shuffle: true, resumeFrom: cursor);
        _stream.Dispose();
        _stream = resumed;
    }

    public override ObjectiveOutput Train(ILanguageModel model, long first, int count, Device device)
    {
        while (_stream.Cursor.ExamplesServed < first) _stream.Next();
        var windows = new List<int[]>(count);
        var indices = new List<long>(count);
        for (var i = 0; i < count; i++)
        {
            indices.Add(_stream.Cursor.ExamplesServed);
            windows.Add(_stream.Next());
        }
        return _objective.Compute(model, windows, indices, device);
    }

    public override ObjectiveOutput Evaluate(ILanguageModel model, int first, int count, Device device) =>
        _objective.Compute(model, _eval[first..(first + count)], Enumerable.Range(first, count).Select(i => (long)i).ToList(), device);

    public override void Dispose() => _stream.Dispose();
}

/// <summary>
/// Packed text windows corrupted T5-style, as task examples: the corrupted window is the prompt and its span targets
/// the target (distill.data: span-corruption, MiniEnD's task-agnostic setting). A window's corruption is a function of
/// the seed and its index, as in span-corruption pretraining, so a resumed or re-split run sees the same examples.
/// Evaluation is cross-entropy on the eval windows' span targets: span corruption's own eval loss.
/// </summary>
internal sealed class SpanCorruptedTextFeed : ExampleFeed
{
    private readonly ITaskObjective _objective;
    private readonly Seq2SeqObjective _evalObjective;
    private readonly SpanCorruption _corruption;
    private readonly IReadOnlyList<IShardSource> _train;
    private readonly ITokenizer _tokenizer;
    private readonly long _seed;
    private readonly TaskTokens[] _eval;
    private PackedExampleStream _stream;

    public SpanCorruptedTextFeed(ExperimentSpec spec, ITokenizer tokenizer, ITaskObjective objective, IReadOnlyList<IShardSource> train,
        IReadOnlyList<IShardSource> eval, int evalCount)
    {
        (_objective, _train, _tokenizer, _seed) = (objective, train, tokenizer, spec.Seed);
        _evalObjective = new Seq2SeqObjective(tokenizer.Special);
        _corruption = new SpanCorruption(spec.Objective.NoiseDensity, spec.Objective.MeanSpanLength, spec.Objective.InputLength, tokenizer.Special);
        _eval = new TaskTokens[evalCount];
        if (evalCount > 0)
        {
            using var stream = new PackedExampleStream(eval, tokenizer, WindowLength, spec.Seed, shuffle: false);
            for (var i = 0; i < evalCount; i++) _eval[i] = Corrupted(stream.Next(), i);
        }
        _stream = new PackedExampleStream(train, tokenizer, WindowLength, spec.Seed, shuffle: true);
    }

    private int WindowLength => _corruption.Lengths.RawLength;

    private TaskTokens Corrupted(int[] window, long index)
    {
        var example = _corruption.Corrupt(window, ObjectiveMath.ExampleSeed(_seed, index));
        return new TaskTokens(Array.ConvertAll(example.Input, t => (long)t), Array.ConvertAll(example.Target, t => (long)t));
    }

    public override DataCursor Cursor => _stream.Cursor;
    public override int EvalExamples => _eval.Length;

    public override void ResumeFrom(DataCursor cursor)
    {
        var resumed = new PackedExampleStream(_train, _tokenizer, WindowLength, _seed, shuffle: true, resumeFrom: cursor);
        _stream.Dispose();
        _stream = resumed;
    }

    public override ObjectiveOutput Train(ILanguageModel model, long first, int count, Device device)
    {
        while (_stream.Cursor.ExamplesServed < first) _stream.Next();
        var examples = new List<TaskTokens>(count);
        var indices = new List<long>(count);
        for (var i = 0; i < count; i++)
        {
            var index = _stream.Cursor.ExamplesServed;
            indices.Add(index);
            examples.Add(Corrupted(_stream.Next(), index));
        }
        return _objective.Compute(model, examples, indices, device);
    }

    public override ObjectiveOutput Evaluate(ILanguageModel model, int first, int count, Device device) =>
        _evalObjective.Compute(model, _eval[first..(first + count)], Enumerable.Range(first, count).Select(i => (long)i).ToList(), device);

    public override void Dispose() => _stream.Dispose();
}

/// <summary>Prompt/target examples from <see cref="TaskExampleStream"/>, tokenized as they are read.</summary>
internal sealed class TaskFeed : ExampleFeed
{
    private readonly ITaskObjective _objective;
    private readonly Seq2SeqObjective _evalObjective;
    private readonly IReadOnlyList<IShardSource> _train;
    private readonly ITokenizer _tokenizer;
    private readonly ObjectiveSpec _lengths;
    private readonly long _seed;
    private readonly TaskTokens[] _eval;
    private TaskExampleStream _stream;

    public TaskFeed(ExperimentSpec spec, ITokenizer tokenizer, ITaskObjective objective, IReadOnlyList<IShardSource> train,
        IReadOnlyList<IShardSource> eval, int evalCount)
    {
        (_objective, _train, _tokenizer, _lengths, _seed) = (objective, train, tokenizer, spec.Objective, spec.Seed);
        // Every task trial is evaluated by the same measure, cross-entropy on the held-out targets, whatever it trains
        // with: a distilled student and a CE-only one compare directly.
        _evalObjective = new Seq2SeqObjective(tokenizer.Special);
        _eval = evalCount == 0 ? [] : TaskShards.ReadAll(eval, evalCount).Select(Tokens).ToArray();
        if (evalCount > 0 && _eval.Length < evalCount)
            throw new InvalidDataException($"data.eval holds {_eval.Length} task examples; eval_batches x micro_batch needs {evalCount}");
        _stream = new TaskExampleStream(train, spec.Seed, shuffle: true);
    }

    private TaskTokens Tokens(TaskExample example) => TaskTokens.From(example, _tokenizer, _lengths.InputLength, _lengths.TargetLength);

    public override DataCursor Cursor => _stream.Cursor;
    public override int EvalExamples => _eval.Length;

    public override void ResumeFrom(DataCursor cursor)
    {
        var resumed = new TaskExampleStream(_train, _seed, shuffle: true, resumeFrom: cursor);
        _stream.Dispose();
        _stream = resumed;
    }

    public override ObjectiveOutput Train(ILanguageModel model, long first, int count, Device device)
    {
        while (_stream.ExamplesServed < first) _stream.Next();
        var examples = new List<TaskTokens>(count);
        var indices = new List<long>(count);
        for (var i = 0; i < count; i++)
        {
            indices.Add(_stream.ExamplesServed);
            examples.Add(Tokens(_stream.Next()));
        }
        return _objective.Compute(model, examples, indices, device);
    }

    public override ObjectiveOutput Evaluate(ILanguageModel model, int first, int count, Device device) =>
        _evalObjective.Compute(model, _eval[first..(first + count)], Enumerable.Range(first, count).Select(i => (long)i).ToList(), device);

    public override int? ExactMatches(ILanguageModel model, int first, int count, Device device) =>
        TaskEvaluation.ExactMatches(model, _eval[first..(first + count)], _tokenizer.Special, _lengths.TargetLength, device);

    public override void Dispose() => _stream.Dispose();
}
