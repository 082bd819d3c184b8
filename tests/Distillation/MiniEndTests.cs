using NUnit.Framework;
using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Shared.Teaching;
using Training.Shared.Training;
using Training.Tests.Support;
using static TorchSharp.torch;

namespace Training.Tests.Distillation;

/// <summary>
/// MiniEnD (SPEC.md section 4): an encoder-decoder teacher this system trained scores a student's own encoder and
/// decoder inputs and sends its last layer's attention vectors; the student matches its logits and attention relations.
/// </summary>
public sealed class MiniEndTests
{
    private static readonly DistillRelations[] EncoderDecoderKinds = [DistillRelations.Logits, DistillRelations.MiniEndD, DistillRelations.MiniEndE];

    /// <summary>Scores through the wire format, as a teacher worker would: request and answer are encoded and decoded.</summary>
    private static Func<TeacherScoreRequest, TeacherScores> OverTheWire(ITeacherScorer teacher) => request =>
    {
        static ReadOnlySpan<byte> Body(byte[] frame) => frame.AsSpan(TeacherFrames.HeaderBytes + 2);
        var received = TeacherFrames.DecodeRequest(Body(TeacherFrames.EncodeRequest(request)));
        return TeacherFrames.DecodeScores(Body(TeacherFrames.EncodeScores(teacher.Score(received))));
    };

    [Test]
    public void AStudentWithTheTeachersWeights_HasNoDivergenceAndNoRelationLoss_AndAnotherStudentHasBoth()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        var yaml = DistillationFixture.EncoderDecoderTeacherExperiment(15);
        var checkpoints = DistillationFixture.TrainTeacher(dir.Path, 15, yaml);

        TorchThread.Run("miniend", () =>
        {
            using var teacher = TeacherModel.Load(checkpoints, null, CPU);
            var spec = ExperimentLoader.Load(Path.Combine(dir.Path, "teacher.yaml"));
            var tokenizer = new ByteTokenizer(0);
            var config = TrialComponents.ModelConfig(spec, tokenizer);
            using var same = (EncoderDecoderModel)ModelFactory.Create(config, 1, CPU);
            InitialWeights.Load(same, checkpoints, null);
            using var other = (EncoderDecoderModel)ModelFactory.Create(config, 2, CPU);
            // Dropout off, as in the frozen teacher, so the same weights give the same numbers.
            same.eval();
            other.eval();
            var examples = DistillationFixture.ReversalExamples(6, 4).Select(e => TaskTokens.From(e, tokenizer, 10, 10)).ToList();
            long[] indices = [0, 1, 2, 3, 4, 5];

            double Loss(EncoderDecoderModel student, DistillRelations relations, double relationWeight = 1)
            {
                using var scope = NewDisposeScope();
                var distill = DistillSpec.Default with { Teacher = checkpoints, Alpha = 0.5, OnPolicy = 0, Relations = relations, RelationWeight = relationWeight };
                var objective = new DistillationObjective(distill, spec.Objective, spec.Seed, tokenizer.Special, OverTheWire(teacher));
                return objective.Compute(student, examples, indices, CPU).Loss.item<float>();
            }
            double Gold(EncoderDecoderModel student)
            {
                using var scope = NewDisposeScope();
                return new Seq2SeqObjective(tokenizer.Special).Compute(student, examples, indices, CPU).Loss.item<float>();
            }

            Assert.That(teacher.Form, Is.EqualTo(TeacherForm.EncoderDecoder));
            Assert.That(teacher.Description, Does.Contain("encoder-decoder"));
            var gold = Gold(same);
            Assert.Multiple(() =>
            {
                // The teacher read exactly what the student read: logits and attention relations agree, only CE is left.
                foreach (var relations in EncoderDecoderKinds)
                    Assert.That(Loss(same, relations), Is.EqualTo(0.5 * gold).Within(1e-4), $"{relations}: the teacher's own weights");
                foreach (var relations in EncoderDecoderKinds)
                    Assert.That(Loss(other, relations), Is.GreaterThan(0.5 * Gold(other) + 1e-3), $"{relations}: another student's logits differ");
                foreach (var relations in new[] { DistillRelations.MiniEndD, DistillRelations.MiniEndE })
                    Assert.That(Loss(other, relations) - Loss(other, relations, relationWeight: 0), Is.GreaterThan(1e-3), $"{relations}: relations differ");
                Assert.That(Loss(other, DistillRelations.MiniEndD), Is.Not.EqualTo(Loss(other, DistillRelations.MiniEndE)).Within(1e-6),
                    "miniend-d matches cross-attention, miniend-e encoder self-attention");
            });

            // A decoder-only request to this teacher is refused with the reason.
            var causal = new TeacherScoreRequest(1, [[1, 2, 3]], [0], [2], TeacherTransport.Full, 0, 1f);
            Assert.That(Assert.Throws<InvalidOperationException>(() => teacher.Score(causal))!.Message, Does.Contain("this teacher is an encoder-decoder"));
            return 0;
        }).GetAwaiter().GetResult();
    }

    /// <summary>The fixture's student (fresh weights, seed 3) and its spec, for objectives built by hand.</summary>
    private static (ExperimentSpec Spec, EncoderDecoderModel Model) Student(ITokenizer tokenizer)
    {
        var spec = ExperimentLoader.Parse(DistillationFixture.StudentExperiment("student", 5, """
            objective:
              kind: seq2seq
              input_length: 10
              target_length: 10
            """), "student.yaml");
        return (spec, (EncoderDecoderModel)ModelFactory.Create(TrialComponents.ModelConfig(spec, tokenizer), 3, CPU));
    }

    [Test]
    public void RelationLoss_ReachesTheLastLayersAttentionWeights()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        var checkpoints = DistillationFixture.TrainTeacher(dir.Path, 5, DistillationFixture.EncoderDecoderTeacherExperiment(5));
        TorchThread.Run("miniend-grad", () =>
        {
            using var teacher = TeacherModel.Load(checkpoints, null, CPU);
            var tokenizer = new ByteTokenizer(0);
            var (spec, student) = Student(tokenizer);
            using var _ = student;
            student.eval();
            var examples = DistillationFixture.ReversalExamples(4, 5).Select(e => TaskTokens.From(e, tokenizer, 10, 10)).ToList();

            Dictionary<string, double> Gradients(DistillRelations relations)
            {
                using var scope = NewDisposeScope();
                student.zero_grad();
                // Only the relations: no logit divergence, no cross-entropy.
                var distill = DistillSpec.Default with { Teacher = checkpoints, Alpha = 1, OnPolicy = 0, Relations = relations };
                var objective = new DistillationObjective(distill, spec.Objective, spec.Seed, tokenizer.Special, OverTheWire(teacher));
                var loss = objective.Compute(student, examples, [0, 1, 2, 3], CPU).Loss;
                var divergenceOnly = new DistillationObjective(distill with { RelationWeight = 0 }, spec.Objective, spec.Seed, tokenizer.Special, OverTheWire(teacher))
                    .Compute(student, examples, [0, 1, 2, 3], CPU).Loss;
                (loss - divergenceOnly).backward();
                return student.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad is { } g ? g.abs().sum().item<float>() : 0.0);
            }
            var d = Gradients(DistillRelations.MiniEndD);
            var e = Gradients(DistillRelations.MiniEndE);
            Assert.Multiple(() =>
            {
                // One layer per stack: layer 0 is the last.
                Assert.That(d["decoder.0.crossAttention.query.weight"], Is.GreaterThan(0), "miniend-d: cross-attention queries");
                Assert.That(d["encoder.0.mlp.output.weight"], Is.GreaterThan(0), "miniend-d: cross-attention keys and values come from the encoder");
                Assert.That(d["decoder.0.selfAttention.value.weight"], Is.GreaterThan(0), "miniend-d: decoder self-attention values");
                Assert.That(d["decoder.0.mlp.output.weight"], Is.Zero, "the last layer's MLP comes after the relations");
                Assert.That(e["encoder.0.selfAttention.key.weight"], Is.GreaterThan(0), "miniend-e: encoder self-attention keys");
                Assert.That(e["decoder.0.crossAttention.query.weight"], Is.Zero, "miniend-e does not match cross-attention");
                Assert.That(e["encoder.0.mlp.output.weight"], Is.Zero, "miniend-e: the encoder's last MLP comes after its self-attention");
            });
            return 0;
        }).GetAwaiter().GetResult();
    }

    private const string Stages = """
        stages:
          teacher:
            model: {arch: ARCH}
            objective: {kind: seq2seq}
          student:
            after: teacher
            model: {arch: encoder-decoder}
            objective: {kind: distill}
            distill:
              teacher: {stage: teacher, pick: last}
              relations: RELATIONS
            resources: {teachers: 1}
        """;

    /// <summary>The file's model (layers: 2, per stack for an encoder-decoder) suits both kinds of teacher stage.</summary>
    private static string StagedExperiment(string teacherArch, string relations) =>
        DistillationFixture.TeacherExperiment(4) + "\n" + Stages.Replace("ARCH", teacherArch).Replace("RELATIONS", relations);

    [TestCase("decoder-only", "miniend-d", "distill.relations miniend-d distils from an encoder-decoder teacher, and stage teacher trains decoder-only")]
    [TestCase("encoder-decoder", "none", "stage teacher trains an encoder-decoder: set distill.relations (logits, miniend-d or miniend-e)")]
    public void Validate_ATeacherStageOfTheOtherKind_IsAnErrorAtTheReference(string arch, string relations, string message)
    {
        var error = Assert.Throws<SpecException>(() => TrialComponents.Expand(ExperimentLoader.Parse(StagedExperiment(arch, relations), "/x/stages.yaml")))!;
        Assert.That(error.Errors.Select(e => e.Key), Is.EqualTo(new[] { "distill.teacher.stage" }), error.Message);
        Assert.That(error.Message, Does.Contain(message));
        Assert.That(TrialComponents.Expand(ExperimentLoader.Parse(StagedExperiment("encoder-decoder", "miniend-e"), "/x/stages.yaml")), Has.Count.EqualTo(2));
    }

    [Test]
    public void Validate_RelationHeadsThatDoNotDivideTheStudentsAttention_IsAnError()
    {
        var yaml = DistillationFixture.StudentExperiment("heads", 4, """
            objective:
              kind: distill
              input_length: 10
              target_length: 10
            distill:
              teacher: /x/teacher/checkpoints
              relations: miniend-d
              relation_heads: 5
            """, "resources:\n  teachers: 1");
        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(yaml, "/x/heads.yaml"))!;
        Assert.That(error.Message, Does.Contain("distill.relation_heads 5 must divide the student's attention width, model.heads x model.head_dim = 2 x 16 = 32"));
        Assert.That(ExperimentLoader.Parse(yaml.Replace("relation_heads: 5", "relation_heads: 4"), "/x/heads.yaml").Distill.RelationHeads, Is.EqualTo(4));
    }

    [Test]
    public async Task Validate_ACheckpointTeacherOfTheOtherKind_IsRefusedBeforeAnyWork()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        using var other = new TempDirectory();
        DistillationFixture.WriteTask(other.Path);
        var decoderOnly = DistillationFixture.TrainTeacher(dir.Path, 3);
        var encoderDecoder = DistillationFixture.TrainTeacher(other.Path, 3, DistillationFixture.EncoderDecoderTeacherExperiment(3));
        async Task<CliResult> Validate(string teacher, string relations)
        {
            File.WriteAllText(dir.Combine("kd.yaml"), DistillationFixture.StudentExperiment("kd", 4, $"""
                objective:
                  kind: distill
                  input_length: 10
                  target_length: 10
                distill:
                  teacher: {teacher}
                  relations: {relations}
                """, "resources:\n  teachers: 1"));
            return await CliProcess.RunAsync(dir.Path, "validate", dir.Combine("kd.yaml"));
        }

        var wantsEncoderDecoder = await Validate(decoderOnly, "miniend-d");
        var wantsDecoderOnly = await Validate(encoderDecoder, "none");
        var right = await Validate(encoderDecoder, "miniend-e");

        Assert.That(wantsEncoderDecoder.ExitCode, Is.Not.EqualTo(0));
        Assert.That(wantsEncoderDecoder.Stderr, Does.Contain($"distill.teacher {decoderOnly} is decoder-only, and distill.relations miniend-d distils from an encoder-decoder teacher"));
        Assert.That(wantsDecoderOnly.ExitCode, Is.Not.EqualTo(0));
        Assert.That(wantsDecoderOnly.Stderr, Does.Contain($"distill.teacher {encoderDecoder} is an encoder-decoder: set distill.relations"));
        Assert.That(right.ExitCode, Is.EqualTo(0), right.Output);
    }

    /// <summary>
    /// MiniEnD's own setting: a span-corruption teacher on text, then a student distilled on the same text corrupted
    /// the same way (distill.data: span-corruption). An eval-only trial holding the teacher's weights scores exactly the
    /// teacher's own final eval loss, so the text feed corrupts windows as span-corruption pretraining does.
    /// </summary>
    [Test]
    public async Task Submit_DistillOnSpanCorruptedText_TrainsAStudentAndScoresTheTeachersWeightsAsPretrainingDid()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        File.WriteAllText(dir.Combine("text.yaml"), """
            name: textkd
            seed: 3
            data:
              train: train
              eval: eval
            tokenizer:
              kind: byte
              sentinels: 16
            model:
              arch: encoder-decoder
              d_model: 32
              encoder_layers: 1
              decoder_layers: 1
              heads: 2
              head_dim: 16
              ffn_dim: 64
            objective:
              kind: span-corruption
              input_length: 32
            train:
              steps: 8
              global_batch: 4
              eval_batches: 2
              log_every: 1
            stages:
              teacher:
                model: {d_model: 48, encoder_layers: 2, decoder_layers: 2, heads: 3}
              student:
                after: teacher
                objective: {kind: distill}
                distill:
                  teacher: {stage: teacher, pick: last}
                  data: span-corruption
                  relations: miniend-d
                  on_policy: 0
                resources: {teachers: 1}
              scored:
                after: teacher
                model: {d_model: 48, encoder_layers: 2, decoder_layers: 2, heads: 3, init_from: {stage: teacher, pick: last}}
                objective: {kind: distill}
                distill:
                  teacher: {stage: teacher, pick: last}
                  data: span-corruption
                  relations: logits
                train: {steps: 0}
                resources: {teachers: 1}
            """);

        var submit = await CliProcess.RunAsync(dir.Path, "submit", dir.Combine("text.yaml"));

        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output);
        var run = Directory.GetDirectories(dir.Combine("runs")).Single();
        var teacher = RunState.Status(run, "textkd-teacher-t000");
        var student = RunState.Status(run, "textkd-student-t000");
        var scored = RunState.Status(run, "textkd-scored-t000");
        Assert.Multiple(() =>
        {
            Assert.That(student.GetProperty("state").GetString(), Is.EqualTo("completed"));
            Assert.That(RunState.Steps(run, "textkd-student-t000"), Is.EqualTo(8));
            Assert.That(student.GetProperty("eval_loss").GetDouble(), Is.GreaterThan(0));
            Assert.That(scored.GetProperty("eval_loss").GetDouble(), Is.EqualTo(teacher.GetProperty("eval_loss").GetDouble()).Within(1e-5),
                "the teacher's weights on the distillation feed's eval windows score the teacher's own span-corruption eval loss");
        });
    }

    [Test]
    public async Task Submit_MiniEndStages_TrainAnEncoderDecoderTeacher_ThenDistilFromItOnATeacherWorker()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        var yaml = DistillationFixture.StudentExperiment("miniend", 8, """
            objective:
              kind: seq2seq
              input_length: 10
              target_length: 10
            """) + """

            stages:
              teacher:
                model: {arch: encoder-decoder, d_model: 48, encoder_layers: 2, decoder_layers: 2, heads: 3, head_dim: 16}
                train: {steps: 10}
              student:
                after: teacher
                objective: {kind: distill}
                distill:
                  teacher: {stage: teacher, pick: last}
                  relations: miniend-d
                  on_policy: 0.5
                  max_new_tokens: 10
                  transport: topk
                  top_k: 8
                resources: {teachers: 1}
            """;
        File.WriteAllText(dir.Combine("miniend.yaml"), yaml);

        var submit = await CliProcess.RunAsync(dir.Path, "submit", dir.Combine("miniend.yaml"));

        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output);
        var run = Directory.GetDirectories(dir.Combine("runs")).Single();
        const string student = "miniend-student-t000";
        Assert.That(RunState.Status(run, student).GetProperty("state").GetString(), Is.EqualTo("completed"));
        Assert.That(RunState.Steps(run, student), Is.EqualTo(8));
        var workerLogs = string.Join("\n", Directory.GetFiles(Path.Combine(run, "workers")).Select(File.ReadAllText));
        Assert.That(workerLogs, Does.Contain("(encoder-decoder,"), "a teacher worker served the teacher stage's encoder-decoder");
    }

    /// <summary>
    /// Before the teacher pool decoded answers on the trainer's thread, its socket thread allocated each answer's
    /// arrays, and the collections that caused ran TorchSharp's Scalar finalizers beside the trainer's calls: this loop
    /// failed with "Unknown scalar type" within 800-2,000 steps (three runs). The teacher here answers with one set of
    /// real scores, so the process holds the student's TorchSharp work only, as a trainer worker does.
    /// </summary>
    [Test]
    [Category("Chaos")]
    public void ThousandsOfStepsScoredThroughTheSocket_RunWithoutTorchSharpFailures()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        var checkpoints = DistillationFixture.TrainTeacher(dir.Path, 3, DistillationFixture.EncoderDecoderTeacherExperiment(3));
        var steps = TorchThread.Run("socket-steps", () =>
        {
            using var teacher = TeacherModel.Load(checkpoints, null, CPU);
            var tokenizer = new ByteTokenizer(0);
            var (spec, student) = Student(tokenizer);
            using var _ = student;
            var examples = DistillationFixture.ReversalExamples(32, 5).Select(e => TaskTokens.From(e, tokenizer, 10, 10)).ToList();
            var indices = Enumerable.Range(0, examples.Count).Select(i => (long)i).ToList();
            var distill = DistillSpec.Default with { Teacher = checkpoints, OnPolicy = 0, Relations = DistillRelations.MiniEndD };
            TeacherScores? answer = null;
            using (NewDisposeScope())
                new DistillationObjective(distill, spec.Objective, spec.Seed, tokenizer.Special, r => answer = teacher.Score(r)).Compute(student, examples, indices, CPU);
            using var server = TeacherStreamServer.Start("127.0.0.1", 0, new FixedAnswer(answer!, teacher), _ => { });
            using var pool = new TeacherPool(TokenizerIds.Of(tokenizer), new TeacherPoolOptions { Form = TeacherForm.EncoderDecoder });
            pool.UpdateEndpoints([server.Endpoint]);
            var objective = new DistillationObjective(distill, spec.Objective, spec.Seed, tokenizer.Special, r => pool.Score(r));
            const int Steps = 2_000;
            for (var step = 0; step < Steps; step++)
            {
                using var scope = NewDisposeScope();
                objective.Compute(student, examples, indices, CPU).Loss.backward();
            }
            return Steps;
        }).GetAwaiter().GetResult();
        Assert.That(steps, Is.EqualTo(2_000));
    }

    /// <summary>A teacher that answers every request with the same scores (no TorchSharp work of its own).</summary>
    private sealed class FixedAnswer(TeacherScores scores, ITeacherScorer real) : ITeacherScorer
    {
        public int VocabSize => real.VocabSize;
        public string TokenizerId => real.TokenizerId;
        public TeacherForm Form => real.Form;
        public TeacherScores Score(TeacherScoreRequest request) => scores with { RequestId = request.RequestId };
    }
}
