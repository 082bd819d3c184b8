using NUnit.Framework;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;
using Training.Tests.Support;
using static TorchSharp.torch;

namespace Training.Tests.Training;

/// <summary>model.init_from: a trial starts from another trial's committed weights, across objectives, and refuses a
/// source whose tensors do not fit or do not verify.</summary>
public class InitFromTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private string Ettin(string arch, string objective, int dModel = 32, string initFrom = "") => $"""
        name: twin
        seed: 5
        data:
          train: train
        tokenizer:
          kind: byte
          sentinels: 20
        model:
          arch: {arch}
          d_model: {dModel}
          layers: 2
          heads: 2
          head_dim: 16
          ffn_dim: 48
          local_window: 8
        {(initFrom == "" ? "" : $"  init_from: {initFrom}")}
        objective:
          kind: {objective}
          input_length: 32
        train:
          steps: 4
          global_batch: 4
          checkpoint_every: 2
          log_every: 1
        """;

    private Trial TrialFrom(string yaml)
    {
        var path = _dir.Combine($"experiment-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return TrialComponents.Expand(ExperimentLoader.Load(path))[0];
    }

    /// <summary>Trains a source trial into runs/src-run/trials/src/checkpoints (steps 2 and 4 committed).</summary>
    private string TrainSource(string arch = "encoder-only", string objective = "mlm")
    {
        var runFolder = _dir.Combine("runs", "src-run");
        Run(TrialFrom(Ettin(arch, objective)), new LocalFolderBlobStore(runFolder), "trials/src/checkpoints");
        return Path.Combine(runFolder, "trials", "src", "checkpoints");
    }

    private List<TrainingEvent> Run(Trial trial, IBlobStore blobs, string prefix, string? runsRoot = null)
    {
        var events = new List<TrainingEvent>();
        TorchThread.Run("init-from-test", () =>
        {
            using var trainer = new Trainer(new TrainerOptions(trial, blobs, prefix, e => { lock (events) events.Add(e); }, RunsRoot: runsRoot));
            return trainer.Run();
        }).GetAwaiter().GetResult();
        return events;
    }

    [Test]
    public void Load_EncoderOnlyMlmIntoEttinDecoder_CopiesEveryParameterOfTheNewestCheckpoint()
    {
        var checkpoints = TrainSource();
        var target = TrialFrom(Ettin("ettin-decoder", "clm")).Spec;

        TorchThread.Run("init-from-copy", () =>
        {
            using var scope = NewDisposeScope();
            var config = TrialComponents.ModelConfig(target, TrialComponents.Tokenizer(target));
            var module = (nn.Module)Shared.Models.ModelFactory.Create(config, seed: 99, CPU);
            var described = InitialWeights.Load(module, checkpoints, runsRoot: null);
            var saved = SafeTensors.Deserialize(File.ReadAllBytes(Path.Combine(checkpoints, "step-00000004", "model.safetensors")), "source").Tensors
                .ToDictionary(t => t.Name);

            Assert.That(described, Does.Contain("@step-00000004"));
            foreach (var (name, parameter) in module.named_parameters())
                Assert.That(HostTensor.From(name, parameter).Data, Is.EqualTo(saved[name].Data), name);
            return 0;
        }).GetAwaiter().GetResult();
    }

    [Test]
    public void Run_InitFromRunAndTrialAtStep_StartsAtStepZeroAndNamesTheSource()
    {
        TrainSource();
        var trial = TrialFrom(Ettin("ettin-decoder", "clm", initFrom: "src-run/src@2"));

        var events = Run(trial, new LocalFolderBlobStore(_dir.Combine("runs", "target-run")), "trials/twin/checkpoints", _dir.Combine("runs"));

        var started = events.OfType<TrialStarted>().Single();
        Assert.That((started.StartStep, started.ResumedFrom), Is.EqualTo((0L, (string?)null)));
        Assert.That(started.InitializedFrom, Does.StartWith("src-run/src@step-00000002"));
        Assert.That(events.OfType<StepMetrics>().Select(m => m.Step).Max(), Is.EqualTo(4));
    }

    [Test]
    public void Locate_StepThatWasNotCommitted_ListsTheCommittedSteps()
    {
        TrainSource();
        var (store, step, _) = InitialWeights.Locate("src-run/src@3", _dir.Combine("runs"));

        var error = Assert.ThrowsAsync<InvalidDataException>(() => store.LoadStepAsync(step!.Value))!;

        Assert.That(error.Message, Does.Contain("no checkpoint at step 3").And.Contain("committed steps: 2, 4"));
    }

    [Test]
    public void Load_OtherWidth_NamesEveryTensorThatDoesNotFit()
    {
        var checkpoints = TrainSource();
        var target = TrialFrom(Ettin("ettin-decoder", "clm", dModel: 48)).Spec;

        var error = TorchThread.Run("init-from-mismatch", () =>
        {
            using var scope = NewDisposeScope();
            var module = (nn.Module)Shared.Models.ModelFactory.Create(TrialComponents.ModelConfig(target, TrialComponents.Tokenizer(target)), 1, CPU);
            var bad = module.named_parameters().Count(p => p.parameter.shape.Contains(48));
            var thrown = Assert.Throws<InvalidDataException>(() => InitialWeights.Load(module, checkpoints, runsRoot: null))!;
            Assert.That(thrown.Message, Does.Contain($"({bad} of {module.named_parameters().Count()} parameters)"));
            return thrown;
        }).GetAwaiter().GetResult();

        Assert.That(error.Message, Does.Contain("'transformer.embedding.weight' is [279,32] in the source, the model needs [279,48]").And.Contain("the model needs [").And.Contain("model.init_from"));
    }

    [Test]
    public void Load_NewestCheckpointCorrupt_IsRefusedNamingTheFile()
    {
        var checkpoints = TrainSource();
        var model = Path.Combine(checkpoints, "step-00000002", "model.safetensors");
        var bytes = File.ReadAllBytes(model);
        bytes[^3] ^= 0xFF;
        File.WriteAllBytes(model, bytes);
        var target = TrialFrom(Ettin("ettin-decoder", "clm")).Spec;

        var error = TorchThread.Run("init-from-corrupt", () =>
        {
            using var scope = NewDisposeScope();
            var module = (nn.Module)Shared.Models.ModelFactory.Create(TrialComponents.ModelConfig(target, TrialComponents.Tokenizer(target)), 1, CPU);
            return Assert.Throws<InvalidDataException>(() => InitialWeights.Load(module, "src-run/src@2", _dir.Combine("runs")))!;
        }).GetAwaiter().GetResult();

        Assert.That(error.Message, Does.Contain("step-00000002").And.Contain("model.safetensors fails its SHA-256 check"));
    }

    [TestCase("../elsewhere", "model.init_from")]
    [TestCase("run/trial@latest", "model.init_from")]
    public void Parse_InitFromNotARunTrialOrAbsolutePath_IsRefused(string value, string key)
    {
        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(Ettin("ettin-decoder", "clm", initFrom: value), _dir.Combine("x.yaml")))!;

        Assert.That(error.Errors.Single().Key, Is.EqualTo(key));
        Assert.That(error.Errors.Single().Message, Does.Contain("RUN/TRIAL"));
    }
}

/// <summary><c>validate</c> and <c>submit</c>, run as real processes, check an init_from source before any work.</summary>
public class InitFromCliTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public async Task ValidateAndSubmit_InitFromAMissingRun_ExitTwoBeforeAnyWork()
    {
        File.WriteAllText(_dir.Combine("cont.yaml"), TestCorpus.TinyExperiment(_dir.Path, name: "cont")
            .Replace("  ffn_dim: 64", "  ffn_dim: 64\n  init_from: gone-run/cont-t000"));

        var validate = await CliProcess.RunAsync(_dir.Path, "validate", "cont.yaml", "--runs", "runs");
        var submit = await CliProcess.RunAsync(_dir.Path, "submit", "cont.yaml", "--runs", "runs");

        Assert.That(validate.ExitCode, Is.EqualTo(2), validate.Output);
        Assert.That(validate.Output, Does.Contain("model.init_from gone-run/cont-t000: no trial cont-t000 in run gone-run"));
        Assert.That(submit.ExitCode, Is.EqualTo(2), submit.Output);
        Assert.That(Directory.Exists(_dir.Combine("runs")) ? Directory.GetDirectories(_dir.Combine("runs")) : [], Is.Empty, "no run was created");
    }
}
