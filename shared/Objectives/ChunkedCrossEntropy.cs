using static TorchSharp.torch;

namespace Training.Shared.Objectives;

/// <summary>
/// Mean cross-entropy through a tied LM head (logits = hidden x weight^T) taken over chunks of rows, so that at most one
/// chunk's [rows, V] logits exist at a time, in the forward pass and for backward. For a 100k vocabulary at batch 8 x 64
/// the full float32 logits, their log-softmax kept for backward and their gradient are 205 MB each.
/// <para>
/// The gradients are computed chunk by chunk during the forward pass (softmax minus one-hot, times the weight and times
/// the hidden states) and attached to the returned loss by a linear surrogate: loss = value + (s - s.detach()) with
/// s = &lt;h, gh&gt; + &lt;W, gW&gt;. Its value is the loss and its first derivatives with respect to the hidden states and
/// the weight are gh and gW, so any use of the scalar loss (scaling, accumulation, adding other terms) back-propagates
/// what the unchunked loss would. Second derivatives are not supported (nothing here takes them).
/// </para>
/// </summary>
public static class ChunkedCrossEntropy
{
    /// <summary>
    /// Chunked only where the full logits would have at least two chunks' elements (128 MB of float32): small
    /// vocabularies keep <c>cross_entropy</c> on full logits. Process-wide; the bench sets it to compare both paths in one run.
    /// </summary>
    public static long MinLogitElements { get; set; } = 2 * ChunkLogitElements;

    /// <summary>
    /// Elements of one chunk's logits (64 MB of float32): rows per chunk = this / V, at least 1; 167 rows for cl100k.
    /// Much smaller chunks cost speed on CPU: the weight gradient is then summed from thin [V, rows] x [rows, d] products.
    /// </summary>
    public const long ChunkLogitElements = 1L << 24;

    public static bool Applies(long tokens, long vocab) => tokens * vocab >= MinLogitElements;

    /// <param name="hidden">[B, T, d] final hidden states</param>
    /// <param name="weight">[V, d] the tied head (the token embedding)</param>
    /// <param name="labels">[B, T] int64, <see cref="ObjectiveMath.IgnoreIndex"/> where no loss is taken</param>
    /// <param name="chunkRows">rows per chunk; by default <see cref="ChunkLogitElements"/> / V</param>
    /// <returns>as <see cref="ObjectiveMath.CrossEntropy"/>: mean loss over counted labels, argmax hits, counted labels</returns>
    public static (Tensor Loss, long Correct, long Counted) Compute(Tensor hidden, Tensor weight, Tensor labels, long? chunkRows = null)
    {
        var width = hidden.shape[^1];
        var vocab = weight.shape[0];
        var rows = chunkRows ?? Math.Max(1, ChunkLogitElements / vocab);
        var flatHidden = hidden.reshape(-1, width);
        var flatLabels = labels.reshape(-1);
        var count = flatHidden.shape[0];
        var needGrad = is_grad_enabled() && (hidden.requires_grad || weight.requires_grad);

        long counted, correct = 0;
        var lossSum = 0.0;
        Tensor? gradHidden = null, gradWeight = null;
        using (no_grad())
        {
            var h = flatHidden.detach();
            var w = weight.detach();
            counted = flatLabels.ne(ObjectiveMath.IgnoreIndex).sum().item<long>();
            if (needGrad)
            {
                gradHidden = zeros_like(h);
                gradWeight = zeros_like(w);
            }
            for (long start = 0; start < count; start += rows)
            {
                using var scope = NewDisposeScope();
                var length = Math.Min(rows, count - start);
                var hc = h.narrow(0, start, length);
                var yc = flatLabels.narrow(0, start, length);
                var valid = yc.ne(ObjectiveMath.IgnoreIndex);
                var safe = yc.masked_fill(valid.logical_not(), 0L).unsqueeze(1);
                var logits = hc.matmul(w.t());
                var logProbabilities = logits.log_softmax(-1);
                var picked = logProbabilities.gather(1, safe).squeeze(1).masked_fill(valid.logical_not(), 0.0);
                lossSum -= picked.sum().to_type(ScalarType.Float64).item<double>();
                correct += logits.argmax(-1).eq(yc).logical_and(valid).sum().item<long>();
                if (gradHidden is null || gradWeight is null) continue;
                // d(mean loss)/d(logits) = (softmax - one-hot) / counted on counted rows, 0 on ignored ones.
                var weights = valid.to_type(logits.dtype).unsqueeze(1);
                var grad = logProbabilities.exp_();
                grad.scatter_add_(1, safe, weights.neg());
                grad.mul_(weights.div(counted));
                gradHidden.narrow(0, start, length).copy_(grad.matmul(w));
                gradWeight.addmm_(grad.t(), hc);
            }
        }
        // counted = 0 gives NaN, as cross_entropy's mean over no targets does.
        var value = tensor(lossSum / counted, dtype: hidden.dtype, device: hidden.device);
        if (gradHidden is null || gradWeight is null)
            return (value, correct, counted);
        var surrogate = flatHidden.mul(gradHidden).sum().add(weight.mul(gradWeight).sum());
        return (value.add(surrogate.sub(surrogate.detach())), correct, counted);
    }
}
