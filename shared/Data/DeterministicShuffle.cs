namespace Training.Shared.Data;

/// <summary>
/// Seeded permutations that are identical on every machine and .NET version (SplitMix64, not <see cref="Random"/>,
/// whose algorithm is an implementation detail).
/// </summary>
public static class DeterministicShuffle
{
    /// <summary>A permutation of 0..count-1 determined by (seed, stream); different streams give independent orders.</summary>
    public static int[] Permutation(int count, long seed, long stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var order = new int[count];
        for (var i = 0; i < count; i++) order[i] = i;
        var state = Mix((ulong)seed ^ Mix((ulong)stream + 0x9E3779B97F4A7C15UL));
        // Fisher-Yates, back to front.
        for (var i = count - 1; i > 0; i--)
        {
            state += 0x9E3779B97F4A7C15UL;
            var j = (int)(Mix(state) % (ulong)(i + 1)); // modulo bias is below 2^-32 for any int count
            (order[i], order[j]) = (order[j], order[i]);
        }

        return order;
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
