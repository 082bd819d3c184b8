using System.Text;
using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Teaching;
using TorchSharp;
using static TorchSharp.torch;

namespace Training.Shared.Training;

/// <summary>
/// A frozen teacher for distillation: a causal model this system trained (a committed checkpoint of a finished trial,
/// its architecture and tokenizer read from the spec saved in the checkpoint). Eval mode, no gradients, bf16 on CUDA. It scores rows of token ids: the
/// log-probabilities of the next token at the positions asked for, in full or as the top k with the mass of the rest.
/// Not thread-safe: one scoring thread owns it (TorchSharp's grad mode and dispose scopes are per thread).
/// </summary>
public sealed class TeacherModel : ITeacherScorer, IDisposable
{
    private readonly ICausalLanguageModel _model;
    private readonly Device _device;
    private readonly int _pad;

    private TeacherModel(ICausalLanguageModel model, Device device, int pad, string tokenizerId, string description)
    {
        _model = model;
        _device = device;
        _pad = pad;
        TokenizerId = tokenizerId;
        Description = description;
        var module = (nn.Module)model;
        module.eval();
        foreach (var parameter in module.parameters()) parameter.requires_grad = false;
        Parameters = module.parameters().Sum(p => p.numel());
    }

    public int VocabSize => _model.Config.VocabSize;
    public string TokenizerId { get; }

    /// <summary>Where the weights came from and what they are, for logs and the trial's record.</summary>
    public string Description { get; }

    public long Parameters { get; }

    /// <summary>Loads the teacher <paramref name="source"/> names (distill.teacher).</summary>
    /// <param name="runsRoot">The runs folder RUN/TRIAL names refer to.</param>
    public static TeacherModel Load(string source, string? runsRoot, Device device)
    {
        if (Directory.Exists(source) && File.Exists(Path.Combine(source, "config.json")))
            throw new InvalidDataException($"distill.teacher {source}: a Hugging Face folder (config.json); teachers from Hugging Face " +
                                           "weights are not supported yet. Name a checkpoint this system trained (RUN/TRIAL, a stage, or a checkpoints folder).");
        var (checkpoint, location, name) = InitialWeights.LoadCommitted(source, runsRoot, "distill.teacher");
        var where = $"{location}/{checkpoint.Manifest.Id}";
        if (!checkpoint.Files.TryGetValue("spec.yaml", out var specBytes))
            throw new InvalidDataException($"distill.teacher {source}: {where} has no spec.yaml, so the teacher's architecture is unknown");
        var spec = ExperimentLoader.Parse(Encoding.UTF8.GetString(specBytes), $"{where}/spec.yaml");
        var tokenizer = TokenizerFactory.ForSpec(spec.Tokenizer, () => throw new InvalidDataException(
            $"distill.teacher {source}: its tokenizer ({spec.Tokenizer.Kind}) is built from its training shards; teachers take a fixed tokenizer (byte, cl100k or files)"));
        var config = TrialComponents.ModelConfig(spec, tokenizer);
        var model = ModelFactory.Create(config, spec.Seed, device);
        if (model is not ICausalLanguageModel causal)
        {
            ((nn.Module)model).Dispose();
            throw new InvalidDataException($"distill.teacher {source}: a teacher is a causal model (decoder-only, gpt, ettin-decoder), " +
                                           $"and this checkpoint is {spec.Model.Architecture}");
        }
        var (tensors, _) = SafeTensors.Deserialize(checkpoint.Files["model.safetensors"], $"{where}/model.safetensors");
        InitialWeights.CopyMatching((nn.Module)model, tensors, $"distill.teacher {source} ({where}/model.safetensors)");
        ToInferencePrecision((nn.Module)model, device);
        return new TeacherModel(causal, device, tokenizer.Special.Pad, TokenizerIds.Of(tokenizer),
            $"{name}@{checkpoint.Manifest.Id} ({SpecWriter.NameOf(spec.Model.Architecture)}, {((nn.Module)model).parameters().Sum(p => p.numel()):N0} parameters)");
    }

    /// <summary>bf16 where the device has fast bf16 (CUDA); float32 on CPU, where bf16 matmuls are slow.</summary>
    private static void ToInferencePrecision(nn.Module model, Device device)
    {
        if (device.type == DeviceType.CUDA) model.to(ScalarType.BFloat16);
    }

    public TeacherScores Score(TeacherScoreRequest request)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var rows = request.Rows.Select(r => Array.ConvertAll(r, t => (long)t)).ToList();
        var width = rows.Max(r => r.Length);
        // Right padding: a causal model's earlier positions never see what follows them.
        var tokens = Objectives.ObjectiveMath.ToTensor(rows.Select(r => Objectives.TaskBatch.Pad(r, width, _pad, left: false)).ToList(), _device);
        var logits = _model.forward(tokens);                            // [B, L, V]
        var picked = cat(Enumerable.Range(0, rows.Count)
            .Select(i => logits[i].narrow(0, request.ScoreFrom[i], request.ScoreCount[i])).ToArray(), 0)
            .to(float32);                                               // [N, V]
        var logProbs = nn.functional.log_softmax(picked / request.Temperature, -1);
        if (request.Transport == TeacherTransport.Full)
            return new TeacherScores(request.RequestId, VocabSize, TeacherTransport.Full, 0, logProbs.cpu().data<float>().ToArray(), null, null);
        var (values, indices) = logProbs.topk(request.TopK, dim: -1);
        // The rest of the mass, log(1 - sum p_topk), kept finite when the top k hold (almost) everything.
        var tail = (1 - values.exp().sum(-1)).clamp_min(1e-30).log();
        return new TeacherScores(request.RequestId, VocabSize, TeacherTransport.TopK, request.TopK,
            values.cpu().data<float>().ToArray(), indices.to(int32).cpu().data<int>().ToArray(), tail.cpu().data<float>().ToArray());
    }

    public void Dispose() => ((nn.Module)_model).Dispose();
}
