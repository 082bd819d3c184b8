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
/// A frozen teacher for distillation: a causal model or an encoder-decoder (MiniEnD) this system trained (a committed
/// checkpoint of a finished trial, its architecture and tokenizer read from the spec saved in the checkpoint), or a
/// Hugging Face Llama folder. Eval mode, no gradients, bf16 on CUDA. It scores rows of token ids: the
/// log-probabilities of the next token at the positions asked for, in full or as the top k with the mass of the rest.
/// Not thread-safe: one scoring thread owns it (TorchSharp's grad mode and dispose scopes are per thread).
/// </summary>
public sealed class TeacherModel : ITeacherScorer, IDisposable
{
    private readonly ILanguageModel _model;
    private readonly Device _device;
    private readonly int _pad;

    private TeacherModel(ILanguageModel model, Device device, int pad, string tokenizerId, string description)
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
    public TeacherForm Form => _model is EncoderDecoderModel ? TeacherForm.EncoderDecoder : TeacherForm.Causal;
    public string TokenizerId { get; }

    /// <summary>Where the weights came from and what they are, for logs and the trial's record.</summary>
    public string Description { get; }

    public long Parameters { get; }

    /// <summary>Loads the teacher <paramref name="source"/> names (distill.teacher).</summary>
    /// <param name="runsRoot">The runs folder RUN/TRIAL names refer to.</param>
    /// <param name="experimentTokenizer">The distillation trial's tokenizer section: the tokenizer of a Hugging Face
    /// folder that holds no tokenizer files of its own (a checkpoint this system trained names its own).</param>
    public static TeacherModel Load(string source, string? runsRoot, Device device, TokenizerSpec? experimentTokenizer = null)
    {
        if (HuggingFaceLlama.IsFolder(source)) return LoadHuggingFace(source, device, experimentTokenizer);
        var (checkpoint, location, name) = InitialWeights.LoadCommitted(source, runsRoot, "distill.teacher");
        var where = $"{location}/{checkpoint.Manifest.Id}";
        if (!checkpoint.Files.TryGetValue("spec.yaml", out var specBytes))
            throw new InvalidDataException($"distill.teacher {source}: {where} has no spec.yaml, so the teacher's architecture is unknown");
        var spec = ExperimentLoader.Parse(Encoding.UTF8.GetString(specBytes), $"{where}/spec.yaml");
        var tokenizer = TokenizerFactory.ForSpec(spec.Tokenizer, () => throw new InvalidDataException(
            $"distill.teacher {source}: its tokenizer ({spec.Tokenizer.Kind}) is built from its training shards; teachers take a fixed tokenizer (byte, cl100k or files)"));
        var config = TrialComponents.ModelConfig(spec, tokenizer);
        var model = ModelFactory.Create(config, spec.Seed, device);
        if (model is not (ICausalLanguageModel or EncoderDecoderModel))
        {
            ((nn.Module)model).Dispose();
            throw new InvalidDataException($"distill.teacher {source}: a teacher is a causal model (decoder-only, gpt, ettin-decoder) or an " +
                                           $"encoder-decoder (distill.relations), and this checkpoint is {SpecWriter.NameOf(spec.Model.Architecture)}");
        }
        var (tensors, _) = SafeTensors.Deserialize(checkpoint.Files["model.safetensors"], $"{where}/model.safetensors");
        InitialWeights.CopyMatching((nn.Module)model, tensors, $"distill.teacher {source} ({where}/model.safetensors)");
        ToInferencePrecision((nn.Module)model, device);
        return new TeacherModel(model, device, tokenizer.Special.Pad, TokenizerIds.Of(tokenizer),
            $"{name}@{checkpoint.Manifest.Id} ({SpecWriter.NameOf(spec.Model.Architecture)}, {((nn.Module)model).parameters().Sum(p => p.numel()):N0} parameters)");
    }

    /// <summary>A Llama decoder in a Hugging Face folder (config.json + *.safetensors). Its token ids are its own
    /// tokenizer's (tokenizer.model, or vocab.json + merges.txt) or, without tokenizer files, the experiment's tokenizer's;
    /// <see cref="HuggingFaceTokenizerProblem"/> says when neither can be so.</summary>
    private static TeacherModel LoadHuggingFace(string folder, Device device, TokenizerSpec? experimentTokenizer)
    {
        if (HuggingFaceTokenizerProblem(folder, experimentTokenizer) is { } problem) throw new InvalidDataException(problem);
        var tokenizer = HuggingFaceTokenizer(folder, experimentTokenizer!);
        var vocabulary = HuggingFaceLlama.ReadConfig(folder, 0).VocabSize;
        // A tokenizer whose pad is a new id past the model's vocabulary (GPT-2 style files have none): the model reads
        // no pad id itself; Score masks the padding.
        var model = HuggingFaceLlama.Load(folder, tokenizer.Special.Pad < vocabulary ? tokenizer.Special.Pad : -1, device);
        ToInferencePrecision(model, device);
        return new TeacherModel(model, device, tokenizer.Special.Pad, TokenizerIds.Of(tokenizer),
            $"{folder} (Hugging Face llama, {model.parameters().Sum(p => p.numel()):N0} parameters, {tokenizer.Name} tokenizer)");
    }

    /// <summary>The folder's own tokenizer with the experiment's sentinels and padding, else the experiment's tokenizer.</summary>
    private static ITokenizer HuggingFaceTokenizer(string folder, TokenizerSpec experimentTokenizer) =>
        TokenizerFactory.ForSpec(HuggingFaceLlama.OwnTokenizer(folder, experimentTokenizer.Sentinels, experimentTokenizer.PadVocabTo) ?? experimentTokenizer,
            () => throw new InvalidDataException("a char tokenizer is refused before this"));

    /// <summary>
    /// Why a Hugging Face folder cannot be a teacher of an experiment with <paramref name="experimentTokenizer"/>, or
    /// null when it can. Its config must read. A folder with its own tokenizer (a SentencePiece tokenizer.model, or a
    /// byte-level BPE's vocab.json and merges.txt) needs an experiment whose tokenizer is the same (the same ids, checked
    /// here); a folder without tokenizer files is read with the experiment's tokenizer, which must then be a fixed one;
    /// a tokenizer.json alone cannot be read yet.
    /// </summary>
    public static string? HuggingFaceTokenizerProblem(string folder, TokenizerSpec? experimentTokenizer)
    {
        try
        {
            HuggingFaceLlama.ReadConfig(folder, 0);
        }
        catch (InvalidDataException e)
        {
            return $"distill.teacher {folder}: {e.Message}";
        }
        if (experimentTokenizer is null)
            return $"distill.teacher {folder}: a Hugging Face folder is read with the experiment's tokenizer, and none was given";
        if (HuggingFaceLlama.OwnTokenizer(folder, experimentTokenizer.Sentinels, experimentTokenizer.PadVocabTo) is { } own)
        {
            var kind = own.Kind == TokenizerKind.SentencePiece ? "sentencepiece" : "bpe";
            if (experimentTokenizer.Kind != own.Kind)
                return $"distill.teacher {folder}: the teacher's tokenizer is its own {kind} tokenizer ({own.Path}); give the student the " +
                       $"same one (tokenizer.kind: {kind}, tokenizer.path: {own.Path})";
            try
            {
                var teacher = TokenizerIds.Of(TokenizerFactory.ForSpec(own, () => []));
                var student = TokenizerIds.Of(TokenizerFactory.ForSpec(experimentTokenizer, () => []));
                return teacher == student ? null
                    : $"distill.teacher {folder}: its {kind} tokenizer {own.Path} maps text to other ids than tokenizer.path " +
                      $"{experimentTokenizer.Path} ({teacher} against {student})";
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                return $"distill.teacher {folder}: {e.Message}";
            }
        }
        var other = HuggingFaceLlama.TokenizerFiles.Where(f => File.Exists(Path.Combine(folder, f))).ToList();
        if (other.Count > 0)
            return $"distill.teacher {folder}: the folder's tokenizer ({string.Join(", ", other)}) cannot be read: tokenizers are read from " +
                   "a SentencePiece tokenizer.model, or from vocab.json together with merges.txt (byte-level BPE), not from tokenizer.json, " +
                   "so its token ids cannot be matched to the student's.";
        if (experimentTokenizer.Kind == TokenizerKind.Char)
            return $"distill.teacher {folder}: tokenizer.kind char builds its vocabulary from the training shards; a Hugging Face " +
                   "teacher needs a fixed tokenizer (byte, cl100k, sentencepiece or bpe)";
        return null;
    }

    /// <summary>
    /// Before any work: why the teacher <paramref name="source"/> names is not the kind <paramref name="distill"/> asks
    /// for (decoder-only without distill.relations, an encoder-decoder with it), or null. A checkpoints folder is judged
    /// by the spec.yaml kept beside its checkpoints; one without it is left to the handshake.
    /// </summary>
    public static string? KindProblem(string source, string? runsRoot, Objectives.DistillSpec distill)
    {
        const string key = "distill.teacher";
        string kind;
        if (HuggingFaceLlama.IsFolder(source)) kind = "decoder-only";
        else
        {
            try
            {
                var (store, _, _) = InitialWeights.Locate(source, runsRoot, key);
                if (store.ReadBesideAsync(Trainer.SpecBlob).GetAwaiter().GetResult() is not { } bytes) return null;
                kind = SpecWriter.NameOf(ExperimentLoader.Parse(Encoding.UTF8.GetString(bytes), $"{store.Location}/{Trainer.SpecBlob}").Model.Architecture);
            }
            catch (Exception e) when (e is InvalidDataException or SpecException or IOException)
            {
                return $"{key} {source}: {e.Message}";
            }
        }
        var encoderDecoder = kind == SpecWriter.NameOf(ModelArchitecture.EncoderDecoder);
        if (distill.EncoderDecoderTeacher && !encoderDecoder)
            return $"{key} {source} is {kind}, and distill.relations {Objectives.DistillRelationsNames.YamlName(distill.Relations)} distils from an encoder-decoder teacher";
        if (!distill.EncoderDecoderTeacher && encoderDecoder)
            return $"{key} {source} is an encoder-decoder: set distill.relations (logits, miniend-d or miniend-e) to distil from one";
        return null;
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
        if (request.Form != Form)
            throw new InvalidOperationException($"this teacher is {(Form == TeacherForm.Causal ? "decoder-only" : "an encoder-decoder")} and the request is in the {request.Form} form");
        var (logits, attention) = request.Form == TeacherForm.Causal ? (CausalLogits(request), []) : EncoderDecoderLogits(request);
        var picked = cat(Enumerable.Range(0, request.Rows.Count)
            .Select(i => logits[i].narrow(0, request.ScoreFrom[i], request.ScoreCount[i])).ToArray(), 0)
            .to(float32);                                               // [N, V]
        var logProbs = nn.functional.log_softmax(picked / request.Temperature, -1);
        if (request.Transport == TeacherTransport.Full)
            return new TeacherScores(request.RequestId, VocabSize, TeacherTransport.Full, 0, logProbs.cpu().data<float>().ToArray(), null, null) { Attention = attention };
        var (values, indices) = logProbs.topk(request.TopK, dim: -1);
        // The rest of the mass, log(1 - sum p_topk), kept finite when the top k hold (almost) everything.
        var tail = (1 - values.exp().sum(-1)).clamp_min(1e-30).log();
        return new TeacherScores(request.RequestId, VocabSize, TeacherTransport.TopK, request.TopK,
            values.cpu().data<float>().ToArray(), indices.to(int32).cpu().data<int>().ToArray(), tail.cpu().data<float>().ToArray()) { Attention = attention };
    }

    /// <summary>[B, L, V] over the rows, right-padded.</summary>
    private Tensor CausalLogits(TeacherScoreRequest request)
    {
        // Right padding: a causal model's earlier positions never see what follows them.
        var tokens = RightPadded(request.Rows);
        // The rows are the student's ids: its padding is masked as keys, and an id the teacher's embedding does not
        // have (the padding, or a student id past a smaller teacher vocabulary) is read as id 0.
        return _model is DecoderOnlyModel decoder
            ? decoder.forward(tokens.masked_fill(tokens.ge(VocabSize), 0), tokens.ne(_pad))
            : ((ICausalLanguageModel)_model).forward(tokens);
    }

    /// <summary>[B, T, V] over the decoder rows, and the last layer's attention vectors the request names. The student
    /// right-pads its inputs the same way, so position t of row b means the same token on both sides.</summary>
    private (Tensor Logits, List<AttentionVectors> Attention) EncoderDecoderLogits(TeacherScoreRequest request)
    {
        var model = (EncoderDecoderModel)_model;
        var modules = request.Attention;
        var (logits, probes) = model.ForwardCapturing(RightPadded(request.Rows), RightPadded(request.DecoderRows!),
            modules.HasFlag(AttentionModules.EncoderSelf), modules.HasFlag(AttentionModules.DecoderSelf), modules.HasFlag(AttentionModules.Cross));
        var attention = new List<AttentionVectors>();
        foreach (var (module, probe) in new[] { (AttentionModules.EncoderSelf, probes.EncoderSelf), (AttentionModules.DecoderSelf, probes.DecoderSelf),
                     (AttentionModules.Cross, probes.Cross) })
        {
            if (probe is null) continue;
            var (q, k, v) = (probe.Queries!.to(float32).cpu(), probe.Keys!.to(float32).cpu(), probe.Values!.to(float32).cpu());
            attention.Add(new AttentionVectors(module, (int)q.shape[0], (int)q.shape[1], (int)k.shape[1], (int)q.shape[2],
                q.data<float>().ToArray(), k.data<float>().ToArray(), v.data<float>().ToArray()));
        }
        return (logits, attention);
    }

    private Tensor RightPadded(IReadOnlyList<long[]> rows) => Objectives.TaskBatch.RightPadded(rows, _pad, _device);

    public void Dispose() => ((nn.Module)_model).Dispose();
}
