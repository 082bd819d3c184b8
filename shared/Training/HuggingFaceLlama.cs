using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using Training.Shared.Models;
using Training.Shared.Storage;
using TorchSharp;
using static TorchSharp.torch;

namespace Training.Shared.Training;

/// <summary>
/// A Llama-architecture decoder saved the Hugging Face way: <c>config.json</c> and one or more <c>*.safetensors</c>
/// files in a folder (what <c>save_pretrained</c> writes). Read into the decoder-only twin built without biases, with
/// SwiGLU, RMSNorm, rotate-half RoPE and grouped-query attention, which is the same computation. Used as a frozen
/// teacher; the tensors are streamed from the files one at a time, so a shard larger than 2 GB loads too.
/// </summary>
public static class HuggingFaceLlama
{
    private const string ConfigFile = "config.json";

    /// <summary>The SentencePiece model a Llama folder holds its tokenizer in (read as tokenizer.kind sentencepiece).</summary>
    public const string SentencePieceFile = "tokenizer.model";

    /// <summary>The tokenizer a Llama folder holds, as the tokenizer section that reads it with
    /// <paramref name="sentinels"/> and <paramref name="padVocabTo"/>: its SentencePiece model (tokenizer.model), else
    /// its byte-level BPE (vocab.json and merges.txt); null when it holds neither.</summary>
    public static Data.TokenizerSpec? OwnTokenizer(string folder, int sentinels, int padVocabTo)
    {
        if (File.Exists(Path.Combine(folder, SentencePieceFile)))
            return new Data.TokenizerSpec(Data.TokenizerKind.SentencePiece, sentinels, Path.Combine(folder, SentencePieceFile), padVocabTo);
        if (File.Exists(Path.Combine(folder, Data.ByteLevelBpeFileTokenizer.VocabularyFile)) && File.Exists(Path.Combine(folder, Data.ByteLevelBpeFileTokenizer.MergesFile)))
            return new Data.TokenizerSpec(Data.TokenizerKind.Bpe, sentinels, Path.GetFullPath(folder), padVocabTo);
        return null;
    }

    /// <summary>Tokenizer files that, without the ones <see cref="OwnTokenizer"/> reads, cannot be read yet.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles = ["tokenizer.json", "vocab.json", "merges.txt"];

    /// <summary>Whether <paramref name="source"/> is such a folder (it has a config.json).</summary>
    public static bool IsFolder(string source) => Directory.Exists(source) && File.Exists(Path.Combine(source, ConfigFile));

    /// <summary>The model <c>config.json</c> describes, for a tokenizer whose padding id is <paramref name="padId"/>.</summary>
    /// <exception cref="InvalidDataException">Not a Llama config, or a field that is missing, malformed or not supported,
    /// named with the file.</exception>
    public static TransformerConfig ReadConfig(string folder, int padId)
    {
        var path = Path.Combine(folder, ConfigFile);
        JsonObject config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
        var type = Text(config, path, "model_type");
        if (type != "llama")
            throw new InvalidDataException($"{path}: model_type is '{type}'; a Hugging Face teacher is a Llama-architecture decoder (model_type llama)");
        var activation = config["hidden_act"] is null ? "silu" : Text(config, path, "hidden_act");
        if (activation != "silu") throw new InvalidDataException($"{path}: hidden_act is '{activation}'; Llama's MLP is SwiGLU (silu)");
        if (config["rope_scaling"] is JsonObject)
            throw new InvalidDataException($"{path}: rope_scaling is set; scaled RoPE (Llama 3.1's, linear, dynamic) is not supported, only plain RoPE");
        if (config["attention_bias"] is JsonValue bias && bias.GetValueKind() == JsonValueKind.True || config["mlp_bias"] is JsonValue mlpBias && mlpBias.GetValueKind() == JsonValueKind.True)
            throw new InvalidDataException($"{path}: attention_bias / mlp_bias is true; only Llama's bias-free projections are supported");
        var hidden = Integer(config, path, "hidden_size");
        var heads = Integer(config, path, "num_attention_heads");
        var kvHeads = config["num_key_value_heads"] is null ? heads : Integer(config, path, "num_key_value_heads");
        var headDim = config["head_dim"] is null ? hidden / heads : Integer(config, path, "head_dim");
        if (config["head_dim"] is null && hidden % heads != 0)
            throw new InvalidDataException($"{path}: hidden_size {hidden} is not a multiple of num_attention_heads {heads} (and no head_dim is given)");
        if (heads % kvHeads != 0)
            throw new InvalidDataException($"{path}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        var model = new TransformerConfig(
            VocabSize: Integer(config, path, "vocab_size"), DModel: hidden, EncoderLayers: 0, DecoderLayers: Integer(config, path, "num_hidden_layers"),
            Heads: heads, KvHeads: kvHeads, HeadDim: headDim, FfnDim: Integer(config, path, "intermediate_size"), Mlp: MlpKind.SwiGlu, Dropout: 0,
            RopeTheta: config["rope_theta"] is null ? 10_000 : Number(config, path, "rope_theta"),
            NormEps: config["rms_norm_eps"] is null ? 1e-6 : Number(config, path, "rms_norm_eps"),
            PadId: padId, TieEmbeddings: config["tie_word_embeddings"] is JsonValue tie && tie.GetValueKind() == JsonValueKind.True)
        {
            Architecture = ModelArchitecture.DecoderOnly,
            Bias = false,
        };
        try
        {
            model.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
        return model;
    }

    /// <summary>Builds the model of <c>config.json</c> on <paramref name="device"/> and fills it from the folder's
    /// safetensors files, after checking every tensor's presence and shape (one error lists every problem).</summary>
    public static DecoderOnlyModel Load(string folder, int padId, Device device)
    {
        var config = ReadConfig(folder, padId);
        var files = Directory.GetFiles(folder, "*.safetensors").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new InvalidDataException($"{folder}: no *.safetensors files beside {ConfigFile}");
        var entries = new Dictionary<string, (string File, TensorEntry Entry)>(StringComparer.Ordinal);
        foreach (var file in files)
            foreach (var entry in ReadHeader(file))
                entries.TryAdd(entry.Name, (file, entry));

        var model = new DecoderOnlyModel(config);
        try
        {
            var parameters = model.named_parameters().Select(p => (Ours: p.name, Theirs: HuggingFaceName(p.name), p.parameter)).ToList();
            var problems = new List<string>();
            foreach (var (_, theirs, parameter) in parameters)
            {
                if (!entries.TryGetValue(theirs, out var found)) problems.Add($"'{theirs}' [{Shape(parameter.shape)}] is missing");
                else if (!found.Entry.Shape.SequenceEqual(parameter.shape))
                    problems.Add($"'{theirs}' is [{Shape(found.Entry.Shape)}], config.json makes it [{Shape(parameter.shape)}]");
            }
            if (problems.Count > 0)
                throw new InvalidDataException($"{folder} does not fit its config.json ({problems.Count} of {parameters.Count} tensors): {string.Join("; ", problems)}");
            model.to(device);
            using var _ = no_grad();
            foreach (var group in parameters.GroupBy(p => entries[p.Theirs].File))
            {
                using var stream = File.OpenRead(group.Key);
                foreach (var (_, theirs, parameter) in group)
                {
                    var entry = entries[theirs].Entry;
                    stream.Position = entry.Offset;
                    var data = new byte[entry.Length];
                    stream.ReadExactly(data);
                    using var loaded = new HostTensor(theirs, entry.DType, entry.Shape, data).ToTensor(parameter.device);
                    parameter.copy_(loaded);
                }
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Our parameter name (DecoderOnlyModel's) to the name transformers' LlamaForCausalLM saves it under.</summary>
    public static string HuggingFaceName(string ours)
    {
        if (ours == "embedding.weight") return "model.embed_tokens.weight";
        if (ours == "finalNorm.weight") return "model.norm.weight";
        if (ours == "untiedHead.weight") return "lm_head.weight";
        var parts = ours.Split('.');
        if (parts is ["layers", var layer, var module, ..]) 
        {
            var rest = string.Join('.', parts[3..]);
            var mapped = (module, rest) switch
            {
                ("selfAttentionNorm", "weight") => "input_layernorm.weight",
                ("mlpNorm", "weight") => "post_attention_layernorm.weight",
                ("selfAttention", "query.weight") => "self_attn.q_proj.weight",
                ("selfAttention", "key.weight") => "self_attn.k_proj.weight",
                ("selfAttention", "value.weight") => "self_attn.v_proj.weight",
                ("selfAttention", "output.weight") => "self_attn.o_proj.weight",
                ("mlp", "gate.weight") => "mlp.gate_proj.weight",
                ("mlp", "input.weight") => "mlp.up_proj.weight",
                ("mlp", "output.weight") => "mlp.down_proj.weight",
                _ => null,
            };
            if (mapped is not null) return $"model.layers.{layer}.{mapped}";
        }
        throw new ArgumentException($"no Hugging Face Llama name for parameter '{ours}'", nameof(ours));
    }

    /// <summary>One tensor of a safetensors file: where its bytes are (from the start of the file).</summary>
    private sealed record TensorEntry(string Name, ScalarType DType, long[] Shape, long Offset, long Length);

    private static List<TensorEntry> ReadHeader(string file)
    {
        using var stream = File.OpenRead(file);
        Span<byte> prefix = stackalloc byte[8];
        if (stream.Read(prefix) != 8) throw new InvalidDataException($"{file}: too short for a safetensors file");
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(prefix);
        if (headerLength <= 0 || headerLength > 100_000_000 || 8 + headerLength > stream.Length)
            throw new InvalidDataException($"{file}: safetensors header length {headerLength} does not fit the file");
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        var dataStart = 8 + headerLength;
        JsonObject json;
        try
        {
            json = JsonNode.Parse(header) as JsonObject ?? throw new InvalidDataException($"{file}: the safetensors header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{file}: the safetensors header is not valid JSON ({e.Message})", e);
        }
        var entries = new List<TensorEntry>();
        foreach (var (name, value) in json)
        {
            if (name == "__metadata__") continue;
            try
            {
                var dtype = value!["dtype"]!.GetValue<string>() switch
                {
                    "F32" => ScalarType.Float32, "BF16" => ScalarType.BFloat16, "F16" => ScalarType.Float16, "F64" => ScalarType.Float64,
                    var other => throw new InvalidDataException($"{file}: tensor '{name}' has dtype {other}; weights are F32, BF16, F16 or F64"),
                };
                var shape = value["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                var offsets = value["data_offsets"]!.AsArray().Select(o => o!.GetValue<long>()).ToArray();
                var expected = shape.Aggregate(1L, (a, b) => a * b) * (dtype switch { ScalarType.Float32 => 4, ScalarType.Float64 => 8, _ => 2 });
                if (offsets.Length != 2 || offsets[1] - offsets[0] != expected || dataStart + offsets[1] > stream.Length)
                    throw new InvalidDataException($"{file}: tensor '{name}' has data_offsets [{string.Join(",", offsets)}], which do not fit its shape or the file");
                entries.Add(new TensorEntry(name, dtype, shape, dataStart + offsets[0], expected));
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{file}: tensor '{name}' has a malformed header entry", e);
            }
        }
        return entries;
    }

    private static string Text(JsonObject config, string path, string field) =>
        config[field] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
            : throw new InvalidDataException($"{path}: {field} is missing or not a string");

    private static int Integer(JsonObject config, string path, string field) =>
        config[field] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var n) && n > 0 ? n
            : throw new InvalidDataException($"{path}: {field} is missing or not a positive integer");

    private static double Number(JsonObject config, string path, string field) =>
        config[field] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.GetValue<double>() is var d && d > 0 ? d
            : throw new InvalidDataException($"{path}: {field} is not a positive number");

    private static string Shape(IEnumerable<long> shape) => string.Join(",", shape);
}
