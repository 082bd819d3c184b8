using System.Text.Json;
using NUnit.Framework;
using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Storage;
using Training.Shared.Teaching;
using Training.Shared.Training;
using Training.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Training.Tests.Distillation;

/// <summary>
/// Llama teachers in Hugging Face folders (config.json + safetensors shards, as transformers' save_pretrained writes
/// them): the logits match a forward pass written out here from transformers' LlamaForCausalLM, step by step.
/// </summary>
public sealed class HuggingFaceLlamaTests
{
    private const int Vocab = 261, Hidden = 32, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 8, Ffn = 48;
    private const double Theta = 500_000, Eps = 1e-5;

    private static Dictionary<string, object?> Config() => new()
    {
        ["architectures"] = new[] { "LlamaForCausalLM" }, ["model_type"] = "llama", ["hidden_act"] = "silu",
        ["vocab_size"] = Vocab, ["hidden_size"] = Hidden, ["intermediate_size"] = Ffn, ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads, ["num_key_value_heads"] = KvHeads, ["rms_norm_eps"] = Eps, ["rope_theta"] = Theta,
        ["tie_word_embeddings"] = false, ["attention_bias"] = false, ["rope_scaling"] = null, ["torch_dtype"] = "float32",
        ["max_position_embeddings"] = 256,
    };

    /// <summary>Random weights under transformers' names, every norm weight away from 1 so a skipped norm shows.</summary>
    private static Dictionary<string, Tensor> RandomWeights(int seed)
    {
        manual_seed(seed);
        Tensor R(params long[] shape) => randn(shape) * 0.2;
        var w = new Dictionary<string, Tensor>
        {
            ["model.embed_tokens.weight"] = R(Vocab, Hidden),
            ["model.norm.weight"] = 1 + R(Hidden),
            ["lm_head.weight"] = R(Vocab, Hidden),
        };
        for (var l = 0; l < Layers; l++)
        {
            var p = $"model.layers.{l}.";
            w[p + "input_layernorm.weight"] = 1 + R(Hidden);
            w[p + "post_attention_layernorm.weight"] = 1 + R(Hidden);
            w[p + "self_attn.q_proj.weight"] = R(Heads * HeadDim, Hidden);
            w[p + "self_attn.k_proj.weight"] = R(KvHeads * HeadDim, Hidden);
            w[p + "self_attn.v_proj.weight"] = R(KvHeads * HeadDim, Hidden);
            w[p + "self_attn.o_proj.weight"] = R(Hidden, Heads * HeadDim);
            w[p + "mlp.gate_proj.weight"] = R(Ffn, Hidden);
            w[p + "mlp.up_proj.weight"] = R(Ffn, Hidden);
            w[p + "mlp.down_proj.weight"] = R(Hidden, Ffn);
        }
        return w;
    }

    /// <summary>Writes the folder: config.json and the weights split over two shards (embeddings and layer 0, then the rest).</summary>
    private static void WriteFolder(string folder, Dictionary<string, Tensor> weights, Dictionary<string, object?>? config = null, ScalarType dtype = ScalarType.Float32)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config ?? Config()));
        var first = weights.Where(w => w.Key.StartsWith("model.embed", StringComparison.Ordinal) || w.Key.StartsWith("model.layers.0.", StringComparison.Ordinal));
        var rest = weights.Except(first).ToList();
        HostTensor[] Host(IEnumerable<KeyValuePair<string, Tensor>> part) => part.Select(w => HostTensor.From(w.Key, w.Value.to(dtype))).ToArray();
        File.WriteAllBytes(Path.Combine(folder, "model-00001-of-00002.safetensors"), SafeTensors.Serialize(Host(first), new Dictionary<string, string> { ["format"] = "pt" }));
        File.WriteAllBytes(Path.Combine(folder, "model-00002-of-00002.safetensors"), SafeTensors.Serialize(Host(rest), new Dictionary<string, string> { ["format"] = "pt" }));
    }

    /// <summary>transformers' LlamaForCausalLM forward (eager attention, no cache, no padding), written out.</summary>
    private static Tensor ReferenceLogits(Dictionary<string, Tensor> w, Tensor tokens)
    {
        Tensor Rms(Tensor x, Tensor weight) => weight * (x * (x.pow(2).mean([-1L], keepdim: true) + Eps).rsqrt());
        Tensor RotateHalf(Tensor x) => cat([-x[.., .., .., (HeadDim / 2)..], x[.., .., .., ..(HeadDim / 2)]], -1);
        var (batch, length) = (tokens.shape[0], tokens.shape[1]);
        var inverse = 1.0 / pow(Theta, arange(0, HeadDim, 2, dtype: ScalarType.Float64) / HeadDim);
        var freqs = outer(arange(length, dtype: ScalarType.Float64), inverse);
        var emb = cat([freqs, freqs], -1);
        var (cos, sin) = (emb.cos().to(ScalarType.Float32), emb.sin().to(ScalarType.Float32));
        var causal = ones(length, length).triu(1).to(ScalarType.Bool);
        var x = w["model.embed_tokens.weight"][tokens];
        for (var l = 0; l < Layers; l++)
        {
            var p = $"model.layers.{l}.";
            var h = Rms(x, w[p + "input_layernorm.weight"]);
            var q = nn.functional.linear(h, w[p + "self_attn.q_proj.weight"]).view(batch, length, Heads, HeadDim).transpose(1, 2);
            var k = nn.functional.linear(h, w[p + "self_attn.k_proj.weight"]).view(batch, length, KvHeads, HeadDim).transpose(1, 2);
            var v = nn.functional.linear(h, w[p + "self_attn.v_proj.weight"]).view(batch, length, KvHeads, HeadDim).transpose(1, 2);
            q = q * cos + RotateHalf(q) * sin;
            k = k * cos + RotateHalf(k) * sin;
            k = k.repeat_interleave(Heads / KvHeads, 1);
            v = v.repeat_interleave(Heads / KvHeads, 1);
            var scores = q.matmul(k.transpose(2, 3)) / Math.Sqrt(HeadDim);
            var attention = scores.masked_fill(causal, double.NegativeInfinity).softmax(-1).matmul(v);
            x = x + nn.functional.linear(attention.transpose(1, 2).reshape(batch, length, Heads * HeadDim), w[p + "self_attn.o_proj.weight"]);
            h = Rms(x, w[p + "post_attention_layernorm.weight"]);
            var mlp = nn.functional.silu(nn.functional.linear(h, w[p + "mlp.gate_proj.weight"])) * nn.functional.linear(h, w[p + "mlp.up_proj.weight"]);
            x = x + nn.functional.linear(mlp, w[p + "mlp.down_proj.weight"]);
        }
        return nn.functional.linear(Rms(x, w["model.norm.weight"]), w["lm_head.weight"]);
    }

    private static Tensor Tokens(int seed) => randint(1, Vocab, [2, 12], generator: new TorchSharp.torch.Generator((ulong)seed));

    [Test]
    public void Load_ShardedFolder_GivesTransformersLogits()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var weights = RandomWeights(3);
        WriteFolder(dir.Combine("llama"), weights);

        using var model = HuggingFaceLlama.Load(dir.Combine("llama"), padId: 0, CPU);
        model.eval();
        var tokens = Tokens(4);
        using var _ = no_grad();
        var ours = model.forward(tokens);
        var reference = ReferenceLogits(weights, tokens);

        Assert.That(ours.shape, Is.EqualTo(new long[] { 2, 12, Vocab }));
        Assert.That((ours - reference).abs().max().item<float>(), Is.LessThan(1e-4f), "same logits as LlamaForCausalLM");
        Assert.That(model.parameters().Sum(p => p.numel()), Is.EqualTo(weights.Values.Sum(t => t.numel())), "no parameter beyond the folder's");
    }

    [Test]
    public void Load_Bf16Weights_AreWidenedExactly()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var weights = RandomWeights(5);
        WriteFolder(dir.Combine("llama"), weights, dtype: ScalarType.BFloat16);

        using var model = HuggingFaceLlama.Load(dir.Combine("llama"), padId: 0, CPU);

        var embedding = model.named_parameters().Single(p => p.name == "embedding.weight").parameter;
        Assert.That(embedding.dtype, Is.EqualTo(ScalarType.Float32));
        var rounded = weights["model.embed_tokens.weight"].to(ScalarType.BFloat16).to(ScalarType.Float32);
        Assert.That((embedding - rounded).abs().max().item<float>(), Is.Zero, "bf16 values widen to float32 without change");
        Assert.That((embedding - weights["model.embed_tokens.weight"]).abs().max().item<float>(), Is.GreaterThan(0), "the file really held bf16");
    }

    [Test]
    public void Load_MissingAndMisshapenTensors_AreAllNamedInOneError()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var weights = RandomWeights(6);
        weights.Remove("model.layers.1.mlp.up_proj.weight");
        weights["model.layers.0.self_attn.k_proj.weight"] = randn(Heads * HeadDim, Hidden);
        WriteFolder(dir.Combine("llama"), weights);

        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceLlama.Load(dir.Combine("llama"), padId: 0, CPU))!;

        Assert.That(error.Message, Does.Contain("2 of 21 tensors")
            .And.Contain("'model.layers.1.mlp.up_proj.weight' [48,32] is missing")
            .And.Contain("'model.layers.0.self_attn.k_proj.weight' is [32,32], config.json makes it [16,32]"));
    }

    [TestCase("rope_scaling", """{"rope_type": "llama3", "factor": 8.0}""", "rope_scaling is set")]
    [TestCase("model_type", "\"gpt2\"", "model_type is 'gpt2'")]
    [TestCase("hidden_act", "\"gelu\"", "hidden_act is 'gelu'")]
    [TestCase("num_key_value_heads", "3", "num_attention_heads 4 is not a multiple of num_key_value_heads 3")]
    [TestCase("hidden_size", "-4", "hidden_size is missing or not a positive integer")]
    public void ReadConfig_UnsupportedOrBadField_IsNamedWithTheFile(string field, string json, string message)
    {
        using var dir = new TempDirectory();
        var config = Config();
        config[field] = JsonSerializer.Deserialize<JsonElement>(json);
        WriteFolder(dir.Combine("llama"), RandomWeights(7), config);

        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceLlama.ReadConfig(dir.Combine("llama"), 0))!;

        Assert.That(error.Message, Does.StartWith(Path.Combine(dir.Combine("llama"), "config.json") + ":").And.Contain(message));
    }

    [Test]
    public void Teacher_FromFolder_ScoresWithTheExperimentsTokenizer()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var weights = RandomWeights(8);
        WriteFolder(dir.Combine("llama"), weights);
        var tokenizer = new TokenizerSpec(TokenizerKind.Byte, 0);

        using var teacher = TeacherModel.Load(dir.Combine("llama"), null, CPU, tokenizer);
        var row = new long[] { 72, 101, 108, 108, 111 };
        var scores = teacher.Score(new TeacherScoreRequest(1, [row], [0], [row.Length], TeacherTransport.Full, 0, 1f));

        var expected = ReferenceLogits(weights, tensor(row).unsqueeze(0))[0].log_softmax(-1);
        Assert.Multiple(() =>
        {
            Assert.That(teacher.TokenizerId, Is.EqualTo(TokenizerIds.Of(new ByteTokenizer(0))));
            Assert.That(teacher.VocabSize, Is.EqualTo(Vocab));
            Assert.That(teacher.Description, Does.Contain("Hugging Face llama"));
            Assert.That((tensor(scores.Values).view(row.Length, Vocab) - expected).abs().max().item<float>(), Is.LessThan(1e-4f));
        });
    }

    [Test]
    public async Task Submit_DistillFromAFolder_ValidatesItServesItOnATeacherWorkerAndCompletes()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        // The byte tokenizer has 259 ids and this teacher 261: the logits are cut to the shared 259.
        WriteFolder(dir.Combine("llama"), RandomWeights(10));
        string Experiment(string teacher) => DistillationFixture.StudentExperiment("hfkd", 12, $"""
            objective:
              kind: distill
              input_length: 10
              target_length: 10
            distill:
              teacher: {teacher}
              on_policy: 0.5
              max_new_tokens: 10
            """, "resources:\n  teachers: 1");
        File.WriteAllText(dir.Combine("hfkd.yaml"), Experiment(dir.Combine("llama")));

        var validate = await CliProcess.RunAsync(dir.Path, "validate", dir.Combine("hfkd.yaml"));
        var submit = await CliProcess.RunAsync(dir.Path, "submit", dir.Combine("hfkd.yaml"));

        Assert.That(validate.ExitCode, Is.EqualTo(0), validate.Output);
        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output);
        var run = Directory.GetDirectories(dir.Combine("runs")).Single();
        Assert.That(RunState.Status(run, "hfkd-t000").GetProperty("state").GetString(), Is.EqualTo("completed"));
        Assert.That(RunState.Steps(run, "hfkd-t000"), Is.EqualTo(12));
        var workerLogs = string.Join("\n", Directory.GetFiles(Path.Combine(run, "workers")).Select(File.ReadAllText));
        Assert.That(workerLogs, Does.Contain("Hugging Face llama"), "a teacher worker served the folder");

        // The same folder with a SentencePiece model of its own, against a student on the byte tokenizer: refused before
        // any work, saying what to set.
        SentencePieceModels.WriteLlamaStyle(dir.Combine("llama", "tokenizer.model"));
        var refused = await CliProcess.RunAsync(dir.Path, "validate", dir.Combine("hfkd.yaml"));
        Assert.That(refused.ExitCode, Is.Not.EqualTo(0));
        Assert.That(refused.Stderr, Does.Contain("give the student the same one (tokenizer.kind: sentencepiece"));
    }

    [Test]
    public void Teacher_WithItsSentencePieceModel_SharesItsIdsWithAStudentOnThatModel_AndNotWithAnother()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        WriteFolder(dir.Combine("llama"), RandomWeights(11));
        SentencePieceModels.WriteLlamaStyle(dir.Combine("llama", "tokenizer.model"));
        File.Copy(dir.Combine("llama", "tokenizer.model"), dir.Combine("student.model"));
        SentencePieceModels.WriteT5Style(dir.Combine("other.model"));
        var student = new TokenizerSpec(TokenizerKind.SentencePiece, 2, dir.Combine("student.model"));

        using var teacher = TeacherModel.Load(dir.Combine("llama"), null, CPU, student);

        Assert.That(teacher.TokenizerId, Is.EqualTo(TokenizerIds.Of(TokenizerFactory.ForSpec(student, () => []))), "the handshake will pass");
        Assert.That(teacher.Description, Does.Contain("sentencepiece tokenizer"));
        Assert.That(TeacherModel.HuggingFaceTokenizerProblem(dir.Combine("llama"), student with { Path = dir.Combine("other.model") }),
            Does.Contain("maps text to other ids than tokenizer.path"));
    }

    [Test]
    public void Teacher_WithItsByteLevelBpe_SharesItsIdsWithAStudentOnACopy()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        WriteFolder(dir.Combine("llama"), RandomWeights(12));
        BpeFiles.Write(dir.Combine("llama"));
        BpeFiles.Write(dir.Combine("student-tokenizer"));
        var student = new TokenizerSpec(TokenizerKind.Bpe, 0, dir.Combine("student-tokenizer"));

        using var teacher = TeacherModel.Load(dir.Combine("llama"), null, CPU, student);
        // The tokenizer's pad (a new id, 266) is past the model's 261 ids: rows of different lengths still score as alone.
        long[] shortRow = [259, 260], longRow = [72, 101, 108, 108, 111, 260];
        var scores = teacher.Score(new TeacherScoreRequest(2, [shortRow, longRow], [0, 0], [2, 6], TeacherTransport.Full, 0, 1f));
        var alone = cat([ReferenceLogits(RandomWeights(12), tensor(shortRow).unsqueeze(0))[0], ReferenceLogits(RandomWeights(12), tensor(longRow).unsqueeze(0))[0]]).log_softmax(-1);

        Assert.That((tensor(scores.Values).view(8, Vocab) - alone).abs().max().item<float>(), Is.LessThan(1e-4f));
        // A source left-padded with the student's pad (SequenceAlignment's layout) scores as the unpadded row: the padding
        // is masked, and RoPE only sees relative positions.
        long[] leftPadded = [266, 266, 259, 260];
        var padded = teacher.Score(new TeacherScoreRequest(3, [leftPadded], [2], [2], TeacherTransport.Full, 0, 1f));
        Assert.That((tensor(padded.Values).view(2, Vocab) - alone.narrow(0, 0, 2)).abs().max().item<float>(), Is.LessThan(1e-4f));
        Assert.That(teacher.TokenizerId, Is.EqualTo(TokenizerIds.Of(TokenizerFactory.ForSpec(student, () => []))));
        Assert.That(teacher.Description, Does.Contain("bpe tokenizer"));
        Assert.That(TeacherModel.HuggingFaceTokenizerProblem(dir.Combine("llama"), new TokenizerSpec(TokenizerKind.Byte, 0)),
            Does.Contain("give the student the same one (tokenizer.kind: bpe"));
    }

    [Test]
    public void Teacher_FolderWithItsOwnTokenizer_IsRefusedWithTheReason()
    {
        using var dir = new TempDirectory();
        WriteFolder(dir.Combine("llama"), RandomWeights(9));
        File.WriteAllText(dir.Combine("llama", "tokenizer.json"), "{}");

        var problem = TeacherModel.HuggingFaceTokenizerProblem(dir.Combine("llama"), new TokenizerSpec(TokenizerKind.Byte, 0));

        Assert.That(problem, Does.Contain("the folder's tokenizer (tokenizer.json) cannot be read"));
        Assert.Throws<InvalidDataException>(() => TeacherModel.Load(dir.Combine("llama"), null, CPU, new TokenizerSpec(TokenizerKind.Byte, 0)));
    }
}
