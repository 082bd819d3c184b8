using System.Diagnostics;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Bench.Generation;

/// <summary>Timings and cache size of one greedy generation of a batch.</summary>
/// <param name="FirstTokenSeconds">input tensor to first token ids on the host: prefill (encoder + cross K/V, or the whole prompt through every layer) and the first decoding step</param>
/// <param name="StepSeconds">each of the remaining OutputLength - 1 steps, one token per row each</param>
/// <param name="CacheBytes">key/value tensors the decoding state allocated (DecodingState.CacheBytes)</param>
/// <param name="TokensPerRow">tokens generated for every row (the requested length, as EOS does not stop it; 1 when only the first token was asked for)</param>
public sealed record GenerationRun(double FirstTokenSeconds, IReadOnlyList<double> StepSeconds, long CacheBytes, int TokensPerRow)
{
    public double DecodeSeconds => StepSeconds.Sum();
    public double TotalSeconds => FirstTokenSeconds + DecodeSeconds;
}

/// <summary>
/// One model behind the KV-cached step API (StartDecoding / DecodeNext), generating greedily for a fixed number
/// of tokens. The project's Generator stops a row at EOS, which an untrained model may emit at any step; timing
/// a fixed length needs the step loop without that check. Like the Generator, the pad id is never chosen.
/// </summary>
public sealed class GenerationSubject
{
    private readonly Func<Tensor, int, (DecodingState State, Tensor Logits)> prefill;
    private readonly Func<Tensor, DecodingState, Tensor> step;

    private GenerationSubject(string name, nn.Module module, TransformerConfig config,
        Func<Tensor, int, (DecodingState, Tensor)> prefill, Func<Tensor, DecodingState, Tensor> step)
    {
        Name = name;
        Config = config;
        Parameters = ParameterCount.Count(module);
        this.prefill = prefill;
        this.step = step;
        module.eval();
    }

    public string Name { get; }
    public TransformerConfig Config { get; }
    public long Parameters { get; }

    /// <summary>The encoder reads the input; the decoder starts from BOS and caches only its own positions.</summary>
    public static GenerationSubject EncoderDecoder(EncoderDecoderModel model, int bosId) => new("encoder-decoder", model, model.Config,
        (input, outputLength) =>
        {
            // BOS plus the outputLength - 1 generated tokens fed back.
            var state = model.StartDecoding(input, capacity: outputLength);
            var bos = full([input.shape[0], 1], (long)bosId, dtype: ScalarType.Int64, device: input.device);
            return (state, model.DecodeNext(bos, state));
        },
        model.DecodeNext);

    /// <summary>The input is the prompt: every layer caches it, then the generated tokens after it.</summary>
    public static GenerationSubject DecoderOnly(DecoderOnlyModel model) => new("decoder-only", model, model.Config,
        (input, outputLength) =>
        {
            var state = model.StartDecoding(input.shape[0], capacity: (int)input.shape[1] + outputLength - 1);
            return (state, model.DecodeNext(input, state));
        },
        model.DecodeNext);

    /// <param name="input">[B, S] int64 token ids, no padding</param>
    /// <param name="firstTokenOnly">stop after the first token (the state is still sized for outputLength)</param>
    public GenerationRun Generate(Tensor input, int outputLength, bool firstTokenOnly = false)
    {
        if (outputLength <= 0)
            throw new ArgumentException($"outputLength = {outputLength} must be positive.", nameof(outputLength));
        var batch = input.shape[0];
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();

        var clock = Stopwatch.StartNew();
        var (state, logits) = prefill(input, outputLength);
        using (state)
        {
            var tokens = Greedy(logits);
            var firstToken = clock.Elapsed.TotalSeconds;
            var steps = new List<double>(outputLength - 1);
            var generated = 1;
            for (; generated < outputLength && !firstTokenOnly; generated++)
            {
                clock.Restart();
                using var stepScope = NewDisposeScope();
                tokens = Greedy(step(tensor(tokens, [batch, 1], device: input.device), state));
                steps.Add(clock.Elapsed.TotalSeconds);
            }
            return new GenerationRun(firstToken, steps, state.CacheBytes, generated);
        }
    }

    /// <param name="logits">[B, V]</param>
    /// <returns>the argmax per row, pad excluded, read back to the host as a real generator would</returns>
    private long[] Greedy(Tensor logits)
    {
        var scores = logits.clone();
        scores.select(1, Config.PadId).fill_(double.NegativeInfinity);
        return scores.argmax(1).cpu().data<long>().ToArray();
    }
}
