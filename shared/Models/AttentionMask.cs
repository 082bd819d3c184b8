using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Additive attention masks for scaled_dot_product_attention: 0 where a query may look at a key, the
/// most negative finite value of the dtype where it may not. A finite value (not -inf) keeps rows
/// without any visible key (an all-padding source) finite instead of NaN; masked keys still get
/// exactly zero weight whenever one key is visible, because exp underflows to 0.
/// </summary>
public static class AttentionMask
{
    /// <summary>True where a token is not padding.</summary>
    /// <param name="tokens">[B, T] int64</param>
    /// <returns>[B, T] bool</returns>
    public static Tensor IsToken(Tensor tokens, long padId) => tokens.ne(padId);

    /// <summary>
    /// Self-attention mask. Keys are positions 0 .. Tk-1; queries are positions queryOffset .. queryOffset+Tq-1
    /// (a KV-cached step attends over everything cached so far). Every query may always see its own
    /// position, so a padding query never has an empty row; real queries never see padding keys.
    /// </summary>
    /// <param name="keyIsToken">[B, Tk] bool</param>
    /// <returns>[B, 1, Tq, Tk] of <paramref name="dtype"/></returns>
    public static Tensor SelfAttention(Tensor keyIsToken, long queryOffset, long queryLength, bool causal, ScalarType dtype)
    {
        var keyLength = keyIsToken.shape[1];
        var device = keyIsToken.device;
        var queryPositions = arange(queryOffset, queryOffset + queryLength, dtype: ScalarType.Int64, device: device).unsqueeze(1); // [Tq, 1]
        var keyPositions = arange(0, keyLength, dtype: ScalarType.Int64, device: device).unsqueeze(0);                            // [1, Tk]

        var visible = keyIsToken.unsqueeze(1).unsqueeze(1);                 // [B, 1, 1, Tk]
        if (causal)
            visible = visible.logical_and(keyPositions.le(queryPositions)); // [B, 1, Tq, Tk]
        visible = visible.logical_or(keyPositions.eq(queryPositions));
        return ToAdditive(visible.expand(keyIsToken.shape[0], 1, queryLength, keyLength), dtype);
    }

    /// <summary>
    /// Sliding-window self-attention mask of Ettin's local layers, positions 0 .. T-1 (no cache).
    /// Bidirectional (encoder): a query at i sees keys j with |i - j| &lt;= window / 2 (window 128 = 64 either side).
    /// Causal (decoder): a query at i sees keys j with 0 &lt;= i - j &lt; window, itself and the window - 1 before it
    /// (the sliding_window = 64 convention of the released decoder). Padding keys are hidden as in <see cref="SelfAttention"/>.
    /// </summary>
    /// <param name="keyIsToken">[B, T] bool</param>
    /// <returns>[B, 1, T, T] of <paramref name="dtype"/></returns>
    public static Tensor SlidingWindow(Tensor keyIsToken, int window, bool causal, ScalarType dtype)
    {
        if (window <= 0)
            throw new ArgumentOutOfRangeException(nameof(window), window, "A sliding window must hold at least one key.");
        var length = keyIsToken.shape[1];
        var device = keyIsToken.device;
        var positions = arange(0, length, dtype: ScalarType.Int64, device: device);
        var distance = positions.unsqueeze(1) - positions.unsqueeze(0);                     // [T, T]: query - key
        var inWindow = causal
            ? distance.ge(0).logical_and(distance.lt(window))
            : distance.abs().le(window / 2);
        var visible = keyIsToken.unsqueeze(1).unsqueeze(1).logical_and(inWindow)             // [B, 1, T, T]
            .logical_or(distance.eq(0));
        return ToAdditive(visible.expand(keyIsToken.shape[0], 1, length, length), dtype);
    }

    /// <summary>Cross-attention mask: every decoder query sees every real encoder position.</summary>
    /// <param name="memoryIsToken">[B, S] bool</param>
    /// <returns>[B, 1, Tq, S] of <paramref name="dtype"/></returns>
    public static Tensor CrossAttention(Tensor memoryIsToken, long queryLength, ScalarType dtype)
    {
        var visible = memoryIsToken.unsqueeze(1).unsqueeze(1); // [B, 1, 1, S]
        return ToAdditive(visible.expand(memoryIsToken.shape[0], 1, queryLength, memoryIsToken.shape[1]), dtype);
    }

    private static Tensor ToAdditive(Tensor visible, ScalarType dtype) =>
        zeros(visible.shape, dtype: dtype, device: visible.device).masked_fill(visible.logical_not(), finfo(dtype).min);
}
