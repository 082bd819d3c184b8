namespace Training.Shared.Collectives;

/// <summary>
/// The ring all-reduce schedule: the buffer is cut into W chunks whose sizes differ by at most one element (some
/// empty when the buffer has fewer than W elements). Reduce-scatter takes W-1 steps, after which rank r holds the
/// full sum of chunk (r+1) mod W; all-gather takes W-1 more steps that pass the finished chunks around.
/// Each chunk's sum is computed by exactly one rank, in ring order, and then copied: every rank ends bit-identical.
/// </summary>
public sealed class RingSchedule
{
    public RingSchedule(int rank, int worldSize, long elements)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, "world size must be at least 1");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in 0..{worldSize - 1}");
        if (elements < 0) throw new ArgumentOutOfRangeException(nameof(elements), elements, "element count must not be negative");
        Rank = rank;
        WorldSize = worldSize;
        Elements = elements;
    }

    public int Rank { get; }
    public int WorldSize { get; }
    public long Elements { get; }

    /// <summary>2(W-1): reduce-scatter steps first, then all-gather steps.</summary>
    public int StepCount => 2 * (WorldSize - 1);

    public bool IsReduceStep(int step) => step < WorldSize - 1;

    /// <summary>The last reduce-scatter step: what this rank receives in it becomes its finished chunk.</summary>
    public int LastReduceStep => WorldSize - 2;

    /// <summary>Chunk c covers elements [Start, Start + Count); the first (Elements mod W) chunks get one extra.</summary>
    public (long Start, long Count) Chunk(int chunk)
    {
        var baseSize = Elements / WorldSize;
        var extra = Elements % WorldSize;
        var start = chunk * baseSize + Math.Min(chunk, extra);
        return (start, baseSize + (chunk < extra ? 1 : 0));
    }

    /// <summary>The chunk this rank sends to its successor in <paramref name="step"/>.</summary>
    public int SendChunk(int step) => IsReduceStep(step)
        ? Mod(Rank - step)
        : Mod(Rank + 1 - (step - (WorldSize - 1)));

    /// <summary>The chunk this rank receives from its predecessor in <paramref name="step"/> (reduced into, or copied over).</summary>
    public int ReceiveChunk(int step) => IsReduceStep(step)
        ? Mod(Rank - step - 1)
        : Mod(Rank - (step - (WorldSize - 1)));

    /// <summary>The chunk whose full sum this rank computes.</summary>
    public int OwnedChunk => Mod(Rank + 1);

    private int Mod(int value) => ((value % WorldSize) + WorldSize) % WorldSize;
}
