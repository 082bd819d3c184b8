using System.Diagnostics;
using System.Text;
using System.Text.Json;
using TorchSharp;
using Training.Shared.Collectives;
using Training.Shared.Data;
using Training.Shared.Messages;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Shared.Storage;
using static TorchSharp.torch;

namespace Training.Shared.Training;

/// <summary>Everything a trainer needs for one trial.</summary>
/// <param name="CheckpointPrefix">Blob folder of this trial's checkpoints.</param>
/// <param name="Report">Receives progress events; called on the trainer thread and on the checkpoint upload thread.</param>
/// <param name="StopRequested">Polled between steps; true checkpoints and stops the trial as cancelled.</param>
/// <param name="Rank">This rank's index in the trial's data-parallel group.</param>
/// <param name="Collective">Averages gradients across the group; null for a single rank. Its rank and world size
/// decide which slice of every global batch this trainer takes.</param>
/// <param name="TaskObjective">Builds the task objective from the trial's tokenizer where it needs more than the spec
/// (distillation: its teachers); null uses the spec's own objective.</param>
public sealed record TrainerOptions(
    Trial Trial,
    IBlobStore CheckpointBlobs,
    string CheckpointPrefix,
    Action<TrainingEvent> Report,
    Func<bool>? StopRequested = null,
    ICollectiveGroup? Collective = null,
    string? RunsRoot = null,
    Func<ITokenizer, ITaskObjective>? TaskObjective = null)
{
    public int Rank => Collective?.Rank ?? 0;
    public int WorldSize => Collective?.WorldSize ?? 1;

    /// <summary>Rank 0 evaluates, checkpoints and reports metrics for the whole group.</summary>
    public bool IsLeader => Rank == 0;
}

/// <summary>What a checkpoint's state.json holds besides tensors.</summary>
public sealed record TrainerState(long Step, DataCursor Cursor, long Seed, string Tokenizer, int VocabSize);

/// <summary>
/// Trains one trial: data stream -> objective -> model step -> optimizer -> metrics -> checkpoint.
/// Everything runs on the calling thread (use <see cref="TorchThread"/>); each step runs in its own dispose scope.
/// </summary>
public sealed class Trainer : IDisposable
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private readonly TrainerOptions _options;
    private readonly ExperimentSpec _spec;
    private readonly Device _device;
    private readonly ITokenizer _tokenizer;
    private readonly ExampleFeed _feed;
    private readonly ILanguageModel _model;
    private readonly nn.Module _module;
    private readonly IOptimizer _optimizer;
    private readonly LearningRateSchedule _schedule;
    private readonly IReadOnlyList<IShardSource> _trainFiles;
    private readonly IReadOnlyList<IShardSource> _evalFiles;
    private readonly CheckpointStore _checkpoints;
    private long _step;
    private long _completedStep;
    private long _lastCheckpointStep = -1;

    public Trainer(TrainerOptions options)
    {
        _options = options;
        _spec = options.Trial.Spec;
        var train = _spec.Train;
        if (train.GlobalBatch % (train.MicroBatch * options.WorldSize) != 0)
            throw new ArgumentException(
                $"train.global_batch {train.GlobalBatch} is not divisible by train.micro_batch {train.MicroBatch} x {options.WorldSize} ranks");
        // Every shard is checked before anything is built, so a bad file fails the trial before any training.
        (_trainFiles, _evalFiles) = ResolveShards(_spec);
        ShardFiles.Check(_trainFiles, ShardCheckDepth.Layout).ThrowIfBad("data.train");
        ShardFiles.Check(_evalFiles, ShardCheckDepth.Layout).ThrowIfBad("data.eval");
        torch.set_num_threads(_spec.Resources.Threads);
        _device = ParseDevice(_spec.Resources.Device);
        _tokenizer = TrialComponents.TokenizerForTrial(_spec, options.CheckpointBlobs, options.CheckpointPrefix, _trainFiles);
        if (options.IsLeader) SaveSpecArtifact();
        // Only the leader evaluates: it alone reads the eval split.
        _feed = ExampleFeed.For(_spec, _tokenizer, _trainFiles, _evalFiles, readEval: options.IsLeader, options.TaskObjective?.Invoke(_tokenizer));
        _model = ModelFactory.Create(TrialComponents.ModelConfig(_spec, _tokenizer), _spec.Seed, _device);
        _module = (nn.Module)_model;
        _optimizer = OptimizerFactory.Create(_spec.Optimizer, _module.named_parameters());
        _schedule = CreateSchedule(_spec);
        // Commit retries are trial warnings (worker log, CLI): an outage shows while training goes on.
        _checkpoints = new CheckpointStore(options.CheckpointBlobs, options.CheckpointPrefix, StorageRetryOptions.CheckpointCommit.WithLog(
            message => options.Report(new TrialWarning(options.Trial.Id, _step, $"checkpoint commit: {message}")),
            $"{options.CheckpointBlobs.Location}/{options.CheckpointPrefix}"));
    }

    /// <summary>The trial's shards as this machine sees them. Local paths are the submitter's: a worker that does not share
    /// its file system finds nothing there, and the error says so and what to use instead.</summary>
    private static (IReadOnlyList<IShardSource> Train, IReadOnlyList<IShardSource> Eval) ResolveShards(ExperimentSpec spec)
    {
        try
        {
            return (TrialComponents.TrainShards(spec), TrialComponents.EvalShards(spec));
        }
        catch (FileNotFoundException e) when (e.FileName is { } pattern && Path.IsPathRooted(pattern))
        {
            throw new FileNotFoundException($"{e.Message} on {Environment.MachineName}: a worker reads local data paths from its own " +
                "file system; for workers that do not share the submitter's, put the shards in blob storage (data.train: azure://...)", e.FileName, e);
        }
    }

    /// <summary>The blob, under a trial's checkpoint prefix, that holds the spec its checkpoints were trained with.</summary>
    public const string SpecBlob = "spec.yaml";

    /// <summary>Keeps the trial's spec beside its checkpoints and tokenizer, so the storage alone says how they were
    /// made (a worker's storage may be all there is of a run). Create-only: a resumed trial keeps the first one.</summary>
    private void SaveSpecArtifact()
    {
        var path = $"{_options.CheckpointPrefix.TrimEnd('/')}/{SpecBlob}";
        try
        {
            _options.CheckpointBlobs.PutAsync(path, Encoding.UTF8.GetBytes(SpecWriter.ToYaml(_spec)), createOnly: true).GetAwaiter().GetResult();
        }
        catch (BlobAlreadyExistsException)
        {
        }
    }

    public long Step => _step;

    /// <summary>The last step whose update was applied; below <see cref="Step"/> only while a step is under way or
    /// after one failed part-way.</summary>
    public long CompletedStep => _completedStep;
    public ILanguageModel Model => _model;
    public ITokenizer Tokenizer => _tokenizer;
    public long ParameterCount => _module.parameters().Sum(p => p.numel());

    public static Device ParseDevice(string device) => device == "cpu" ? CPU : new Device(device);

    public static LearningRateSchedule CreateSchedule(ExperimentSpec spec)
    {
        var s = spec.Schedule;
        var lr = spec.Optimizer.Lr;
        var steps = spec.Train.Steps;
        return s.Kind switch
        {
            ScheduleKind.Cosine => new CosineSchedule(lr, s.WarmupSteps, steps, s.MinLrRatio),
            ScheduleKind.Wsd => new WarmupStableDecaySchedule(lr, s.WarmupSteps, steps, s.MinLrRatio, s.DecayFraction),
            ScheduleKind.Constant => new ConstantSchedule(lr, s.WarmupSteps, steps),
            _ => throw new ArgumentOutOfRangeException(nameof(spec), s.Kind, "unknown schedule.kind"),
        };
    }

    /// <summary>Restores the newest verified checkpoint, if any. Returns its id.</summary>
    public string? RestoreLatest() => RestoreLatest(out _);

    /// <summary>Restores the newest verified checkpoint, if any, and names the newer ones that failed verification
    /// (each with why). Returns its id.</summary>
    public string? RestoreLatest(out IReadOnlyList<string> skipped)
    {
        var loaded = _checkpoints.LoadLatestAsync().GetAwaiter().GetResult();
        skipped = loaded?.Skipped ?? [];
        if (loaded is null) return null;
        var source = $"{_checkpoints.Location}/{loaded.Manifest.Id}";
        // A newer checkpoint that fails verification is skipped, and said so: the trial continues from an older step.
        foreach (var bad in loaded.Skipped)
            _options.Report(new TrialWarning(_options.Trial.Id, loaded.Manifest.Step,
                $"checkpoint {bad}; skipped it, resuming from the older {loaded.Manifest.Id}"));
        // Training passes those steps again and commits them anew; the leader uncommits the bad ones so it can.
        if (_options.IsLeader)
            foreach (var manifest in loaded.SkippedManifests ?? [])
                _checkpoints.SetAsideAsync(manifest).GetAwaiter().GetResult();
        var state = JsonSerializer.Deserialize<TrainerState>(loaded.Files["state.json"], Json)
            ?? throw new InvalidDataException($"{source}/state.json is empty");
        if (state.VocabSize != _tokenizer.VocabSize)
            throw new InvalidDataException($"{source}: saved with vocabulary {state.VocabSize}, the spec's tokenizer has {_tokenizer.VocabSize}");
        var (modelTensors, _) = SafeTensors.Deserialize(loaded.Files["model.safetensors"], $"{source}/model.safetensors");
        LoadParameters(_module, modelTensors, $"{source}/model.safetensors");
        var (optimizerTensors, _) = SafeTensors.Deserialize(loaded.Files["optimizer.safetensors"], $"{source}/optimizer.safetensors");
        _optimizer.Restore(optimizerTensors, $"{source}/optimizer.safetensors");
        _feed.ResumeFrom(state.Cursor);
        _step = state.Step;
        _completedStep = state.Step;
        _lastCheckpointStep = state.Step;
        return loaded.Manifest.Id;
    }

    public static void LoadParameters(nn.Module module, IReadOnlyList<HostTensor> tensors, string source)
    {
        var byName = tensors.ToDictionary(t => t.Name);
        using var _ = no_grad();
        foreach (var (name, parameter) in module.named_parameters())
        {
            if (!byName.TryGetValue(name, out var saved))
                throw new InvalidDataException($"{source}: no tensor for parameter '{name}'");
            using var loaded = saved.ToTensor(parameter.device);
            if (!loaded.shape.SequenceEqual(parameter.shape))
                throw new InvalidDataException($"{source}: '{name}' has shape [{string.Join(",", loaded.shape)}], model needs [{string.Join(",", parameter.shape)}]");
            parameter.copy_(loaded);
        }
    }

    /// <summary>Runs from the current step to <c>train.steps</c>, or until stopped.</summary>
    public TrialOutcome Run(CancellationToken cancel = default)
    {
        var trialId = _options.Trial.Id;
        var train = _spec.Train;
        var resumedFrom = RestoreLatest(out var skipped);
        // A trial's own checkpoint wins: init_from only seeds the weights of a trial that has none yet.
        var initializedFrom = resumedFrom is null && _spec.Model.InitFrom is { } initFrom
            ? InitialWeights.Load(_module, initFrom, _options.RunsRoot) : null;
        if (_options.IsLeader) _options.Report(new TrialStarted(trialId, _step, train.Steps, ParameterCount, resumedFrom, initializedFrom, skipped.Count > 0 ? skipped : null));
        var writer = new CheckpointWriter(_checkpoints, train.KeepCheckpoints,
            m => _options.Report(new CheckpointCommitted(trialId, m.Step, m.Id, _checkpoints.Location)),
            message => _options.Report(new TrialWarning(trialId, _step, message)));
        try
        {
            while (_step < train.Steps)
            {
                var stopWanted = cancel.IsCancellationRequested || (_options.StopRequested?.Invoke() ?? false);
                // A single rank stops only before the step; a group votes inside the step's all-reduce so every
                // rank stops after the same step.
                if (stopWanted && _options.WorldSize == 1)
                    return Stop(writer);
                var metrics = TrainStep(stopWanted);
                var step = metrics.Metrics;
                // The step a group stops after was applied and is checkpointed: its metrics are reported like any other.
                if (_options.IsLeader && (_step % train.LogEvery == 0 || _step == 1 || _step == train.Steps || metrics.StopVoted)) _options.Report(step);
                if (metrics.StopVoted) return Stop(writer);
                if (train.EvalEvery > 0 && _step % train.EvalEvery == 0 && _step != train.Steps) Evaluate();
                if (train.CheckpointEvery > 0 && _step % train.CheckpointEvery == 0 && _step != train.Steps) SaveCheckpoint(writer);
            }
            Evaluate();
            // An eval-only trial (train.steps 0) trained nothing: its weights are its source's, committed there.
            if (train.Steps > 0) SaveCheckpoint(writer);
            writer.Flush();
            return TrialOutcome.Completed;
        }
        catch
        {
            // Keep whatever upload is in flight: a committed checkpoint is never lost to a later failure.
            try { writer.Flush(); } catch (Exception) { /* the original failure is the one to report */ }
            throw;
        }
    }

    private TrialOutcome Stop(CheckpointWriter writer)
    {
        SaveCheckpoint(writer);
        writer.Flush();
        return TrialOutcome.Cancelled;
    }

    /// <summary>What one step produced, and whether any rank asked the group to stop after it.</summary>
    public sealed record StepResult(StepMetrics Metrics, bool StopVoted);

    /// <summary>One optimizer step over this rank's slice of the next global batch.</summary>
    public StepMetrics TrainStep() => TrainStep(stopWanted: false).Metrics;

    /// <summary>One optimizer step; with a group, gradients, metrics and stop votes are summed in one all-reduce.</summary>
    public StepResult TrainStep(bool stopWanted)
    {
        var train = _spec.Train;
        var clock = Stopwatch.StartNew();
        _step++;
        using var scope = NewDisposeScope();
        _module.train();
        var perRank = train.GlobalBatch / _options.WorldSize;
        var microSteps = perRank / train.MicroBatch;
        double lossSum = 0;
        long correct = 0, targets = 0, processed = 0;
        for (var micro = 0; micro < microSteps; micro++)
        {
            using var microScope = NewDisposeScope();
            // RNG (dropout) is a function of (seed, step, micro-batch of the global batch): a resumed run replays the
            // same randomness, and a group of any size applies the same masks to the same examples.
            var globalMicro = (long)_options.Rank * microSteps + micro;
            manual_seed(unchecked((long)ObjectiveMath.ExampleSeed(_spec.Seed * 1_000_003 + globalMicro, _step)));
            var output = _feed.Train(_model, MicroBatchStart(micro), train.MicroBatch, _device);
            (output.Loss / microSteps).backward();
            lossSum += output.Loss.item<float>();
            correct += output.CorrectTokens;
            targets += output.TargetTokens;
            processed += output.ProcessedTokens;
        }
        var stopVotes = stopWanted ? 1 : 0;
        var meanLoss = lossSum / microSteps;
        var communication = TimeSpan.Zero;
        if (_options.Collective is { WorldSize: > 1 } group)
        {
            var started = clock.Elapsed;
            var totals = AllReduceGradients(group, [meanLoss, correct, targets, processed, stopVotes]);
            meanLoss = totals[0] / group.WorldSize;
            (correct, targets, processed, stopVotes) = ((long)totals[1], (long)totals[2], (long)totals[3], (int)totals[4]);
            communication = clock.Elapsed - started;
        }
        var lr = _schedule.At(_step);
        var clip = _spec.Optimizer.GradClip > 0 ? _spec.Optimizer.GradClip : double.PositiveInfinity; // libtorch takes a float: MaxValue overflows
        var gradNorm = nn.utils.clip_grad_norm_(_optimizer.Parameters, clip);
        _optimizer.Step(lr);
        _completedStep = _step;
        _optimizer.ZeroGrad();
        var seconds = clock.Elapsed.TotalSeconds;
        var metrics = new StepMetrics(_options.Trial.Id, _step, meanLoss, targets == 0 ? 0 : (double)correct / targets,
            lr, gradNorm, processed / Math.Max(seconds, 1e-9), seconds, communication.TotalSeconds);
        return new StepResult(metrics, stopVotes > 0);
    }

    /// <summary>
    /// Averages every gradient across the group through one flat float32 buffer (the collective's bucket), with this
    /// rank's scalar statistics appended so they are summed in the same round trip. Returns the summed scalars.
    /// </summary>
    private double[] AllReduceGradients(ICollectiveGroup group, double[] scalars)
    {
        var parameters = _optimizer.Parameters;
        var grads = parameters.Select(p => p.grad ?? zeros_like(p)).ToList();
        using var _ = no_grad();
        var flat = cat([.. grads.Select(g => g.detach().to(float32).reshape(-1)), tensor(scalars.Select(v => (float)v).ToArray())]).contiguous();
        group.AllReduceSum(flat);
        var offset = 0L;
        for (var i = 0; i < parameters.Count; i++)
        {
            var count = parameters[i].numel();
            var averaged = flat.narrow(0, offset, count).view(parameters[i].shape).div_(group.WorldSize).to(parameters[i].dtype);
            if (parameters[i].grad is { } grad) grad.copy_(averaged);
            offset += count;
        }
        var totals = flat.narrow(0, offset, scalars.Length).to(float64).data<double>().ToArray();
        return totals;
    }

    /// <summary>The global index of this rank's first example in micro-batch <paramref name="micro"/> of the current
    /// global batch. Every rank reads the whole global stream and keeps its slice, so the examples a step sees do not
    /// depend on world size.</summary>
    private long MicroBatchStart(int micro)
    {
        var train = _spec.Train;
        var perRank = train.GlobalBatch / _options.WorldSize;
        return (_step - 1) * train.GlobalBatch + (long)_options.Rank * perRank + (long)micro * train.MicroBatch;
    }

    /// <summary>Mean loss and token accuracy on the first eval_batches micro-batches of the eval split; for task data
    /// also the share of them the model generates exactly.</summary>
    public EvalMetrics? Evaluate()
    {
        if (_feed.EvalExamples == 0 || !_options.IsLeader) return null;
        var train = _spec.Train;
        double lossSum = 0;
        long correct = 0, targets = 0;
        int? exact = null;
        _module.eval();
        using (no_grad())
        {
            for (var batch = 0; batch < train.EvalBatches; batch++)
            {
                using var scope = NewDisposeScope();
                var first = batch * train.MicroBatch;
                var output = _feed.Evaluate(_model, first, train.MicroBatch, _device);
                lossSum += output.Loss.item<float>() * output.TargetTokens;
                correct += output.CorrectTokens;
                targets += output.TargetTokens;
                if (_feed.ExactMatches(_model, first, train.MicroBatch, _device) is { } matches) exact = (exact ?? 0) + matches;
            }
        }
        _module.train();
        var metrics = new EvalMetrics(_options.Trial.Id, _step, lossSum / Math.Max(1, targets), (double)correct / Math.Max(1, targets), targets,
            exact is { } n ? (double)n / _feed.EvalExamples : null);
        _options.Report(metrics);
        return metrics;
    }

    /// <summary>Snapshots the current step into <paramref name="writer"/>; returns how long the training loop was
    /// blocked (the copy to host memory; serialization and upload are the writer's, in the background).</summary>
    public TimeSpan SaveCheckpoint(CheckpointWriter writer)
    {
        if (_step == _lastCheckpointStep || !_options.IsLeader) return TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        _lastCheckpointStep = _step;
        // Copy to host memory now (blocking); serialization, hashing and upload happen in the background.
        var model = _module.named_parameters().Select(p => HostTensor.From(p.name, p.parameter)).ToList();
        var optimizer = _optimizer.Snapshot();
        // The cursor holds arrays the stream goes on using: state.json and spec.yaml (small) are written now.
        var state = JsonSerializer.SerializeToUtf8Bytes(new TrainerState(_step, _feed.Cursor, _spec.Seed, _tokenizer.Name, _tokenizer.VocabSize), Json);
        var spec = Encoding.UTF8.GetBytes(SpecWriter.ToYaml(_spec));
        var (step, trialId) = (_step, _options.Trial.Id);
        writer.Submit(step, () => new Dictionary<string, byte[]>
        {
            ["model.safetensors"] = SafeTensors.Serialize(model, new Dictionary<string, string> { ["trial"] = trialId, ["step"] = step.ToString() }),
            ["optimizer.safetensors"] = SafeTensors.Serialize(optimizer),
            ["state.json"] = state,
            ["spec.yaml"] = spec,
        });
        return clock.Elapsed;
    }

    /// <summary>A writer for this trainer's checkpoint store (what <see cref="Run"/> uses), for tools that drive steps
    /// themselves, such as the benchmarks.</summary>
    public CheckpointWriter CreateCheckpointWriter(Action<CheckpointManifest> committed, Action<string>? log = null) =>
        new(_checkpoints, _spec.Train.KeepCheckpoints, committed, log);

    public void Dispose()
    {
        _feed.Dispose();
        _optimizer.Dispose();
        _module.Dispose();
    }
}
