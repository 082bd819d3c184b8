using TorchSharp;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Autoregressive generation for both models, under no_grad and in eval mode (the previous mode is restored).
/// Encoder-decoder: the encoder runs once, each decoder layer projects cross-attention keys/values once, and
/// decoder self-attention is cached. Decoder-only: the left-padded prompt is cached in every layer, then one
/// token per step. Each row stops at EOS; returned rows hold the new tokens only, up to and including EOS.
/// The pad id is never generated (it would be masked out as padding when fed back), and BOS/EOS must differ from it.
/// Each step runs in its own dispose scope and caches are preallocated, so memory stays flat.
/// </summary>
public static class Generator
{
    /// <param name="encoderInput">[B, S] int64, right-padded with PadId</param>
    public static long[][] Generate(EncoderDecoderModel model, Tensor encoderInput, int bosId, int eosId, GenerationOptions options)
    {
        TokenTensors.RequireBatch(encoderInput, nameof(encoderInput));
        RequireTokenId(model.Config, bosId, nameof(bosId));
        RequireTokenId(model.Config, eosId, nameof(eosId));
        options.Validate();

        return WithInferenceMode(model, () =>
        {
            var batch = encoderInput.shape[0];
            var device = encoderInput.device;
            var decoded = new List<long[]> { Enumerable.Repeat((long)bosId, (int)batch).ToArray() };
            DecodingState? state = options.UseCache ? model.StartDecoding(encoderInput, options.MaxNewTokens) : null;
            try
            {
                return Loop(model.Config, eosId, options, batch, device, decoded, nextLogits: () =>
                {
                    if (state is not null)
                        return model.DecodeNext(TokenColumn(decoded[^1], device), state);
                    // Baseline: full encoder and decoder pass over everything so far.
                    return model.forward(encoderInput, TokenMatrix(decoded, device)).select(1, decoded.Count - 1);
                });
            }
            finally
            {
                state?.Dispose();
            }
        });
    }

    /// <param name="promptTokens">[B, P] int64, left-padded with PadId</param>
    public static long[][] Generate(DecoderOnlyModel model, Tensor promptTokens, int eosId, GenerationOptions options)
    {
        TokenTensors.RequireBatch(promptTokens, nameof(promptTokens));
        RequireTokenId(model.Config, eosId, nameof(eosId));
        options.Validate();

        return WithInferenceMode(model, () =>
        {
            var batch = promptTokens.shape[0];
            var promptLength = (int)promptTokens.shape[1];
            var device = promptTokens.device;
            var fed = new List<long[]>(); // tokens fed after the prompt, one column per step
            DecodingState? state = options.UseCache ? model.StartDecoding(batch, promptLength + options.MaxNewTokens) : null;
            try
            {
                return Loop(model.Config, eosId, options, batch, device, fed, nextLogits: () =>
                {
                    if (state is not null)
                        return model.DecodeNext(fed.Count == 0 ? promptTokens : TokenColumn(fed[^1], device), state);
                    var sequence = fed.Count == 0 ? promptTokens : cat([promptTokens, TokenMatrix(fed, device)], dim: 1);
                    return model.forward(sequence).select(1, promptLength + fed.Count - 1);
                });
            }
            finally
            {
                state?.Dispose();
            }
        });
    }

    /// <summary>
    /// The shared step loop. nextLogits returns [B, V] logits after the last column of <paramref name="fed"/>;
    /// the chosen tokens are appended to fed (pad for rows that already ended) for the next step.
    /// </summary>
    private static long[][] Loop(TransformerConfig config, int eosId, GenerationOptions options, long batch,
        Device device, List<long[]> fed, Func<Tensor> nextLogits)
    {
        var rows = Enumerable.Range(0, (int)batch).Select(_ => new List<long>()).ToArray();
        var finished = new bool[batch];
        var sampler = options.IsGreedy ? null : new torch.Generator(unchecked((ulong)options.Seed), device);
        try
        {
            for (var step = 0; step < options.MaxNewTokens; step++)
            {
                long[] next;
                using (NewDisposeScope())
                    next = Choose(nextLogits(), config.PadId, options, sampler);

                var column = new long[batch];
                for (var row = 0; row < batch; row++)
                {
                    column[row] = finished[row] ? config.PadId : next[row];
                    if (finished[row])
                        continue;
                    rows[row].Add(next[row]);
                    finished[row] = next[row] == eosId;
                }
                if (finished.All(f => f))
                    break;
                fed.Add(column);
            }
        }
        finally
        {
            sampler?.Dispose();
        }
        return rows.Select(r => r.ToArray()).ToArray();
    }

    /// <summary>Greedy argmax, or a sample from softmax(logits / T) over the top-k tokens.</summary>
    /// <param name="logits">[B, V]</param>
    private static long[] Choose(Tensor logits, int padId, GenerationOptions options, torch.Generator? sampler)
    {
        // Half-precision logits are widened; float32/float64 are kept so argmax sees the model's own precision.
        var scores = (logits.dtype is ScalarType.Float16 or ScalarType.BFloat16 ? logits.to(ScalarType.Float32) : logits).clone();
        scores.select(1, padId).fill_(double.NegativeInfinity);
        Tensor chosen;
        if (sampler is null)
        {
            chosen = scores.argmax(1);
        }
        else
        {
            scores = scores / options.Temperature;
            if (options.TopK > 0 && options.TopK < scores.shape[1])
            {
                var (topValues, _) = scores.topk(options.TopK, dim: 1);
                var threshold = topValues.narrow(1, options.TopK - 1, 1); // [B, 1], the k-th largest
                scores = scores.masked_fill(scores.lt(threshold), double.NegativeInfinity);
            }
            chosen = scores.softmax(1).multinomial(1, generator: sampler).squeeze(1);
        }
        return chosen.cpu().data<long>().ToArray();
    }

    /// <summary>Runs generation in eval mode, without autograd, inside one dispose scope for all its tensors.</summary>
    private static long[][] WithInferenceMode(nn.Module model, Func<long[][]> generate)
    {
        var wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            return generate();
        }
        finally
        {
            if (wasTraining)
                model.train();
        }
    }

    /// <returns>[B, 1] int64</returns>
    private static Tensor TokenColumn(long[] column, Device device) =>
        tensor(column, [column.Length, 1], device: device);

    /// <returns>[B, columns.Count] int64</returns>
    private static Tensor TokenMatrix(List<long[]> columns, Device device)
    {
        var batch = columns[0].Length;
        var values = new long[batch * columns.Count];
        for (var t = 0; t < columns.Count; t++)
            for (var row = 0; row < batch; row++)
                values[row * columns.Count + t] = columns[t][row];
        return tensor(values, [batch, columns.Count], device: device);
    }

    private static void RequireTokenId(TransformerConfig config, int id, string name)
    {
        if (id < 0 || id >= config.VocabSize)
            throw new ArgumentException($"{name} = {id} is not a token id of a vocabulary of {config.VocabSize}.", name);
        // The pad id is a masked key everywhere: a BOS or EOS equal to it would be invisible to later positions.
        if (id == config.PadId)
            throw new ArgumentException($"{name} = {id} equals TransformerConfig.PadId; pad positions are masked out of attention.", name);
    }
}
