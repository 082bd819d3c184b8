using Training.Shared.Data;

namespace Training.Shared.Objectives;

/// <summary>The lengths span corruption works with, derived from the wanted encoder input length.</summary>
/// <param name="RawLength">Tokens taken from the text per example (L).</param>
/// <param name="InputLength">Encoder input length: non-noise tokens + one sentinel per span + EOS.</param>
/// <param name="TargetLength">Target length: noise tokens + one sentinel per span + EOS.</param>
public sealed record SpanCorruptionLengths(int RawLength, int InputLength, int TargetLength, int NoiseTokens, int Spans);

/// <summary>One corrupted example: what the encoder reads and what the decoder must produce.</summary>
public sealed record CorruptedExample(int[] Input, int[] Target);

/// <summary>
/// T5 span corruption as released in T5 / nanoT5: a fixed number of noise tokens split into random non-empty
/// spans, interleaved with random non-empty runs of kept tokens (starting with kept), each span replaced by a
/// sentinel counted down from the top of the vocabulary.
/// </summary>
public sealed class SpanCorruption
{
    private readonly double _noiseDensity;
    private readonly double _meanSpanLength;
    private readonly SpecialTokens _special;

    public SpanCorruption(double noiseDensity, double meanSpanLength, int inputLength, SpecialTokens special)
    {
        if (noiseDensity <= 0 || noiseDensity >= 1)
            throw new ArgumentOutOfRangeException(nameof(noiseDensity), noiseDensity, "noise density must be in (0, 1)");
        if (meanSpanLength < 1)
            throw new ArgumentOutOfRangeException(nameof(meanSpanLength), meanSpanLength, "mean span length must be >= 1");
        _noiseDensity = noiseDensity;
        _meanSpanLength = meanSpanLength;
        _special = special;
        Lengths = ComputeLengths(inputLength, noiseDensity, meanSpanLength);
        if (Lengths.Spans > special.SentinelCount)
            throw new ArgumentException(
                $"span corruption at input length {inputLength} needs {Lengths.Spans} sentinels but the tokenizer reserves {special.SentinelCount}; raise tokenizer.sentinels");
    }

    public SpanCorruptionLengths Lengths { get; }

    // Python's round() is banker's rounding; the reference lengths (568 -> 512/114) depend on it.
    private static int Round(double x) => (int)Math.Round(x, MidpointRounding.ToEven);

    private static (int Noise, int Spans) NoiseAndSpans(int rawLength, double density, double meanSpan)
    {
        var noise = Math.Clamp(Round(rawLength * density), 1, rawLength - 1);
        var spans = Math.Max(1, Round(noise / meanSpan));
        return (noise, spans);
    }

    /// <summary>The largest raw length L whose corrupted input fits in <paramref name="inputLength"/>.</summary>
    public static SpanCorruptionLengths ComputeLengths(int inputLength, double noiseDensity, double meanSpanLength)
    {
        if (inputLength < 4)
            throw new ArgumentOutOfRangeException(nameof(inputLength), inputLength, "input length must be >= 4");
        int InputFor(int raw)
        {
            var (noise, spans) = NoiseAndSpans(raw, noiseDensity, meanSpanLength);
            return raw - noise + spans + 1;
        }
        var rawLength = inputLength;
        while (InputFor(rawLength + 1) <= inputLength) rawLength++;
        // With one sentinel per noise token (mean span 1) even L = inputLength overflows: walk down instead.
        while (rawLength > 2 && InputFor(rawLength) > inputLength) rawLength--;
        var (n, s) = NoiseAndSpans(rawLength, noiseDensity, meanSpanLength);
        if (rawLength - n < s)
            throw new ArgumentException($"noise density {noiseDensity} leaves fewer kept tokens than spans at input length {inputLength}");
        return new SpanCorruptionLengths(rawLength, rawLength - n + s + 1, n + s + 1, n, s);
    }

    /// <summary>Which of <paramref name="length"/> positions are noise; a pure function of the seed.</summary>
    public bool[] NoiseMask(int length, ulong seed)
    {
        var (noise, spans) = NoiseAndSpans(length, _noiseDensity, _meanSpanLength);
        var rng = new Random(unchecked((int)(seed ^ (seed >> 32))));
        var noiseRuns = RandomSegmentation(noise, spans, rng);
        var keptRuns = RandomSegmentation(length - noise, spans, rng);
        var mask = new bool[length];
        var position = 0;
        for (var i = 0; i < spans; i++)
        {
            position += keptRuns[i];
            for (var j = 0; j < noiseRuns[i]; j++) mask[position++] = true;
        }
        return mask;
    }

    /// <summary>Splits <paramref name="items"/> into <paramref name="segments"/> random non-empty runs.</summary>
    private static int[] RandomSegmentation(int items, int segments, Random rng)
    {
        if (segments > items)
            throw new ArgumentException($"cannot split {items} tokens into {segments} non-empty spans");
        // Choose segments-1 distinct cut points among the items-1 gaps (a shuffled indicator, as in T5).
        var cuts = new bool[items - 1];
        for (var i = 0; i < segments - 1; i++) cuts[i] = true;
        rng.Shuffle(cuts);
        var lengths = new int[segments];
        var segment = 0;
        lengths[0] = 1;
        foreach (var cut in cuts)
        {
            if (cut) segment++;
            lengths[segment]++;
        }
        return lengths;
    }

    /// <summary>Corrupts one raw window of exactly <see cref="SpanCorruptionLengths.RawLength"/> tokens.</summary>
    public CorruptedExample Corrupt(ReadOnlySpan<int> tokens, ulong seed)
    {
        if (tokens.Length != Lengths.RawLength)
            throw new ArgumentException($"span corruption expects {Lengths.RawLength} raw tokens, got {tokens.Length}");
        var mask = NoiseMask(tokens.Length, seed);
        var input = new List<int>(Lengths.InputLength);
        var target = new List<int>(Lengths.TargetLength);
        var span = -1;
        for (var i = 0; i < tokens.Length; i++)
        {
            if (mask[i])
            {
                if (i == 0 || !mask[i - 1])
                {
                    span++;
                    input.Add(_special.Sentinel(span));
                    target.Add(_special.Sentinel(span));
                }
                target.Add(tokens[i]);
            }
            else
            {
                input.Add(tokens[i]);
            }
        }
        input.Add(_special.Eos);
        target.Add(_special.Eos);
        return new CorruptedExample(input.ToArray(), target.ToArray());
    }
}
