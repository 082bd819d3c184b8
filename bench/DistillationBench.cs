using System.Diagnostics;
using System.Globalization;
using System.Text;
using Training.Bench.Support;
using Training.Shared.Data;
using Training.Shared.Messages;
using Training.Shared.Objectives;
using Training.Shared.Objectives.Distillation;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Teaching;
using Training.Shared.Training;

namespace Training.Bench;

/// <summary>
/// Distillation at experiments/distill.yaml's sizes, each number against a reference from the same run: (a) teacher
/// scoring positions/s through the socket stream (server + pool on loopback) against calling the same teacher in
/// process; (b) bytes per scored target token, full distribution against top-k; (c) the student's step with KD
/// (off-policy and on-policy) against its cross-entropy step; (d) MiniEnD at experiments/miniend.yaml's sizes: bytes
/// per scored target token with the teacher's attention vectors against its logits alone, and the student's miniend-d
/// step against its cross-entropy step.
/// </summary>
public static class DistillationBench
{
    private const int Requests = 30;
    private const int WarmupSteps = 3;
    private const int MeasuredSteps = 12;

    public static void Run(string outDir)
    {
        var work = Path.Combine(Path.GetTempPath(), "bench-distill-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        try
        {
            var eval = SyntheticTasks.Generate("reverse", 256, seed: 2);
            TaskImporter.Write(SyntheticTasks.Generate("reverse", 2000, seed: 1, eval.Select(e => e.Prompt).ToHashSet()), eval,
                Path.Combine(work, "tasks"), rowsPerShard: 1000);
            var result = TorchThread.Run("bench-distill", () => Measure(work)).GetAwaiter().GetResult();
            Write(outDir, result);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private sealed record Result(string Teacher, int Positions, double InProcess, double Socket, double FullBytes, double TopKBytes, int TopK,
        double CeStep, double OffPolicyStep, double OnPolicyStep, MiniEndResult MiniEnd);

    /// <summary>Bytes per scored position for an encoder-decoder teacher's answers, and the student's miniend-d step.</summary>
    private sealed record MiniEndResult(string Teacher, double LogitsBytes, double MiniEndDBytes, double MiniEndEBytes, double CeStep, double MiniEndDStep);

    private static string Yaml(string name, string model, string objective, int steps, int teachers = 0) => $"""
        name: {name}
        seed: 1
        data:
          train: tasks/train
          eval: tasks/eval
        tokenizer:
          kind: byte
          sentinels: 0
        model:
        {model}
        objective:
        {objective}
        optimizer:
          lr: 2.0e-3
        train:
          steps: {steps}
          global_batch: 32
          eval_batches: 1
          eval_every: 0
          checkpoint_every: 0
        resources:
          threads: {Math.Min(2, Environment.ProcessorCount)}
        {(teachers > 0 ? $"  teachers: {teachers}" : "")}
        """;

    private const string TeacherModelYaml = "  arch: decoder-only\n  d_model: 128\n  layers: 4\n  heads: 4\n  head_dim: 32\n  ffn_dim: 256";
    private const string EncoderDecoderTeacherYaml = "  arch: encoder-decoder\n  d_model: 128\n  layers: 3\n  heads: 4\n  head_dim: 32\n  ffn_dim: 256";
    private const string StudentModelYaml = "  arch: encoder-decoder\n  d_model: 64\n  layers: 2\n  heads: 4\n  head_dim: 16\n  ffn_dim: 128";

    private static Trial TrialOf(string work, string yaml)
    {
        var path = Path.Combine(work, $"{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return TrialComponents.Expand(ExperimentLoader.Load(path)).Single();
    }

    private static Result Measure(string work)
    {
        TorchSharp.torch.set_num_threads(Math.Min(2, Environment.ProcessorCount));
        // The teacher's weights do not change its speed: a few steps give a committed checkpoint to load it from.
        var teacherTrial = TrialOf(work, Yaml("teacher", TeacherModelYaml, "  kind: seq2seq\n  input_length: 24\n  target_length: 12", 5));
        using (var trainer = new Trainer(new TrainerOptions(teacherTrial, new LocalFolderBlobStore(Path.Combine(work, "teacher")), "checkpoints", _ => { })))
            trainer.Run();
        var checkpoints = Path.Combine(work, "teacher", "checkpoints");
        using var teacher = TeacherModel.Load(checkpoints, null, TorchSharp.torch.CPU);

        // Requests as a student sends them: 32 examples, prompt left-padded to S = 24, then the gold target.
        var tokenizer = new ByteTokenizer(0);
        var examples = TaskShards.ReadAll([new LocalShardSource(Path.Combine(work, "tasks", "train", "shard-00000.parquet"))], 32)
            .Select(e => TaskTokens.From(e, tokenizer, 24, 12)).ToList();
        var aligned = examples.Select(e => SequenceAlignment.Align(e.Prompt, e.Target, 24, tokenizer.Special.Pad, tokenizer.Special.Bos)).ToList();
        TeacherScoreRequest Request(long id, TeacherTransport transport) => new(id, aligned.Select(a => a.TeacherInput).ToList(),
            aligned.Select(a => a.ScoreFrom).ToArray(), aligned.Select(a => a.ScoreCount).ToArray(), transport, 64, 1f);
        var positions = aligned.Sum(a => a.ScoreCount);

        for (var i = 0; i < 3; i++) teacher.Score(Request(i, TeacherTransport.Full));
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Requests; i++) teacher.Score(Request(i, TeacherTransport.Full));
        var inProcess = Requests * positions / clock.Elapsed.TotalSeconds;

        using var server = TeacherStreamServer.Start("127.0.0.1", 0, teacher);
        using var pool = new TeacherPool(TokenizerIds.Of(tokenizer));
        pool.UpdateEndpoints([server.Endpoint]);
        TeacherScores Remote(TeacherScoreRequest r) => pool.Score(r);
        for (var i = 0; i < 3; i++) Remote(Request(i, TeacherTransport.Full));
        var before = pool.Statistics.BytesReceived;
        clock.Restart();
        for (var i = 0; i < Requests; i++) Remote(Request(i, TeacherTransport.Full));
        var socket = Requests * positions / clock.Elapsed.TotalSeconds;
        var fullBytes = (double)(pool.Statistics.BytesReceived - before) / (Requests * positions);
        before = pool.Statistics.BytesReceived;
        for (var i = 0; i < Requests; i++) Remote(Request(i, TeacherTransport.TopK));
        var topKBytes = (double)(pool.Statistics.BytesReceived - before) / (Requests * positions);

        // The student's step: cross-entropy, then KD on the gold targets, then KD on its own samples.
        // The student's step; scorer null: cross-entropy only.
        double Step(string objective, Func<TeacherScoreRequest, TeacherScores>? scorer, double onPolicy)
        {
            var yaml = Yaml("student", StudentModelYaml, objective, 100, scorer is null ? 0 : 1);
            var trial = TrialOf(work, yaml);
            Func<ITokenizer, ITaskObjective>? kd = scorer is null ? null
                : t => new DistillationObjective(trial.Spec.Distill with { OnPolicy = onPolicy }, trial.Spec.Objective, trial.Spec.Seed, t.Special, scorer);
            using var trainer = new Trainer(new TrainerOptions(trial, new LocalFolderBlobStore(Path.Combine(work, Guid.NewGuid().ToString("N"))),
                "checkpoints", _ => { }, TaskObjective: kd));
            for (var i = 0; i < WarmupSteps; i++) trainer.TrainStep();
            return Stats.Median(Enumerable.Range(0, MeasuredSteps).Select(_ => trainer.TrainStep().StepSeconds).ToList());
        }
        var distillObjective = $"  kind: distill\n  input_length: 24\n  target_length: 12\ndistill:\n  teacher: {checkpoints}";
        var ce = Step("  kind: seq2seq\n  input_length: 24\n  target_length: 12", null, 0);
        var off = Step(distillObjective, Remote, 0);
        var on = Step(distillObjective, Remote, 1);
        var miniEnd = MeasureMiniEnd(work, examples, aligned, Step);
        // Named by its shape, not its scratch folder: results must not hold this machine's paths.
        return new Result($"decoder-only (d_model 128, 4 layers, {teacher.Parameters:N0} parameters)", positions, inProcess, socket, fullBytes, topKBytes, 64, ce, off, on,
            miniEnd);
    }

    /// <summary>An encoder-decoder teacher served on its own stream: what each distill.relations costs on the wire per
    /// scored position, and the student's miniend-d step (<paramref name="step"/>: objective YAML, distill, on-policy share).</summary>
    private static MiniEndResult MeasureMiniEnd(string work, List<TaskTokens> examples, List<AlignedExample> aligned,
        Func<string, Func<TeacherScoreRequest, TeacherScores>?, double, double> step)
    {
        var teacherTrial = TrialOf(work, Yaml("encdec-teacher", EncoderDecoderTeacherYaml, "  kind: seq2seq\n  input_length: 24\n  target_length: 12", 5));
        using (var trainer = new Trainer(new TrainerOptions(teacherTrial, new LocalFolderBlobStore(Path.Combine(work, "encdec-teacher")), "checkpoints", _ => { })))
            trainer.Run();
        var checkpoints = Path.Combine(work, "encdec-teacher", "checkpoints");
        using var teacher = TeacherModel.Load(checkpoints, null, TorchSharp.torch.CPU);
        using var server = TeacherStreamServer.Start("127.0.0.1", 0, teacher);
        using var pool = new TeacherPool(teacher.TokenizerId, new TeacherPoolOptions { Form = TeacherForm.EncoderDecoder });
        pool.UpdateEndpoints([server.Endpoint]);
        var positions = aligned.Sum(a => a.ScoreCount);
        double BytesPerPosition(AttentionModules modules)
        {
            TeacherScoreRequest Request(long id) => new(id, examples.Select(e => e.Prompt).ToList(), new int[aligned.Count],
                aligned.Select(a => a.ScoreCount).ToArray(), TeacherTransport.Full, 0, 1f)
            {
                DecoderRows = aligned.Select(a => a.StudentDecoderInput).ToList(),
                Attention = modules,
            };
            pool.Score(Request(0));
            var before = pool.Statistics.BytesReceived;
            for (var i = 0; i < 5; i++) pool.Score(Request(i));
            return (double)(pool.Statistics.BytesReceived - before) / (5 * positions);
        }
        var logits = BytesPerPosition(AttentionModules.None);
        var miniEndD = BytesPerPosition(AttentionModules.DecoderSelf | AttentionModules.Cross);
        var miniEndE = BytesPerPosition(AttentionModules.DecoderSelf | AttentionModules.EncoderSelf);
        // Cross-entropy again, next to the miniend-d step: the two ratios' references come from the same minute.
        var ce = step("  kind: seq2seq\n  input_length: 24\n  target_length: 12", null, 0);
        var relations = step($"  kind: distill\n  input_length: 24\n  target_length: 12\ndistill:\n  teacher: {checkpoints}\n  relations: miniend-d\n  relation_heads: 4",
            r => pool.Score(r), 0);
        return new MiniEndResult($"encoder-decoder (d_model 128, 2 + 1 layers, {teacher.Parameters:N0} parameters)", logits, miniEndD, miniEndE, ce, relations);
    }

    private static void Write(string outDir, Result r)
    {
        var result = new
        {
            machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            teacher = r.Teacher,
            request = new { examples = 32, source_length = 24, scored_positions = r.Positions },
            scoring = new
            {
                in_process_positions_per_second = r.InProcess,
                socket_positions_per_second = r.Socket,
                ratio_socket_to_in_process = r.Socket / r.InProcess,
            },
            transport = new
            {
                full_bytes_per_position = r.FullBytes,
                top_k = r.TopK,
                top_k_bytes_per_position = r.TopKBytes,
                ratio_top_k_to_full = r.TopKBytes / r.FullBytes,
            },
            student_step = new
            {
                cross_entropy_seconds = r.CeStep,
                kd_off_policy_seconds = r.OffPolicyStep,
                kd_on_policy_seconds = r.OnPolicyStep,
                ratio_off_policy_to_ce = r.OffPolicyStep / r.CeStep,
                ratio_on_policy_to_ce = r.OnPolicyStep / r.CeStep,
                goal_on_policy_ratio_at_most = 1.5,
                note = "sampling runs on the current weights before each KD step (max_staleness 0): nothing overlaps training yet",
            },
            miniend = new
            {
                teacher = r.MiniEnd.Teacher,
                logits_bytes_per_position = r.MiniEnd.LogitsBytes,
                miniend_d_bytes_per_position = r.MiniEnd.MiniEndDBytes,
                miniend_e_bytes_per_position = r.MiniEnd.MiniEndEBytes,
                ratio_miniend_d_to_logits = r.MiniEnd.MiniEndDBytes / r.MiniEnd.LogitsBytes,
                ratio_miniend_e_to_logits = r.MiniEnd.MiniEndEBytes / r.MiniEnd.LogitsBytes,
                cross_entropy_seconds = r.MiniEnd.CeStep,
                miniend_d_step_seconds = r.MiniEnd.MiniEndDStep,
                ratio_miniend_d_to_ce = r.MiniEnd.MiniEndDStep / r.MiniEnd.CeStep,
            },
        };
        ResultFiles.WriteJson(outDir, "distillation.json", result);
        string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
        var md = new StringBuilder()
            .AppendLine("# Distillation")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"experiments/distill.yaml's sizes on {Environment.ProcessorCount} cores (CPU, float32): teacher {r.Teacher}; requests of 32 examples, {r.Positions} scored positions each.")
            .AppendLine()
            .AppendLine("| measure | value | reference (same run) | ratio |")
            .AppendLine("|---|---|---|---|")
            .AppendLine($"| teacher scoring through the socket stream | {F(r.Socket, "N0")} positions/s | in process {F(r.InProcess, "N0")} positions/s | {F(r.Socket / r.InProcess, "F2")}x |")
            .AppendLine($"| bytes per scored target token, top-{r.TopK} | {F(r.TopKBytes, "N0")} B | full distribution {F(r.FullBytes, "N0")} B | {F(r.TopKBytes / r.FullBytes, "F3")}x |")
            .AppendLine($"| student step, off-policy KD | {F(r.OffPolicyStep * 1000, "F0")} ms | cross-entropy step {F(r.CeStep * 1000, "F0")} ms | {F(r.OffPolicyStep / r.CeStep, "F2")}x |")
            .AppendLine($"| student step, on-policy KD | {F(r.OnPolicyStep * 1000, "F0")} ms | cross-entropy step {F(r.CeStep * 1000, "F0")} ms | {F(r.OnPolicyStep / r.CeStep, "F2")}x (goal at most 1.5x with max_staleness 1: {(r.OnPolicyStep / r.CeStep <= 1.5 ? "met" : "not met; sampling does not overlap training yet")}) |")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"MiniEnD, experiments/miniend.yaml's sizes: teacher {r.MiniEnd.Teacher}, the same 32 requests' examples, full logits.")
            .AppendLine()
            .AppendLine("| measure | value | reference (same run) | ratio |")
            .AppendLine("|---|---|---|---|")
            .AppendLine($"| bytes per scored target token, miniend-d (decoder self + cross attention vectors) | {F(r.MiniEnd.MiniEndDBytes, "N0")} B | logits only {F(r.MiniEnd.LogitsBytes, "N0")} B | {F(r.MiniEnd.MiniEndDBytes / r.MiniEnd.LogitsBytes, "F2")}x |")
            .AppendLine($"| bytes per scored target token, miniend-e (decoder self + encoder self attention vectors) | {F(r.MiniEnd.MiniEndEBytes, "N0")} B | logits only {F(r.MiniEnd.LogitsBytes, "N0")} B | {F(r.MiniEnd.MiniEndEBytes / r.MiniEnd.LogitsBytes, "F2")}x |")
            .AppendLine($"| student step, miniend-d (off-policy) | {F(r.MiniEnd.MiniEndDStep * 1000, "F0")} ms | cross-entropy step {F(r.MiniEnd.CeStep * 1000, "F0")} ms | {F(r.MiniEnd.MiniEndDStep / r.MiniEnd.CeStep, "F2")}x |")
            .ToString();
        ResultFiles.WriteText(outDir, "distillation.md", md);
        Console.WriteLine(md);
    }
}
