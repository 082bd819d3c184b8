using System.Text;

namespace Training.Tests.Hardening;

/// <summary>Hostile experiment files: what an attacker or a broken generator might hand to validate or the API.</summary>
public static class HostileYaml
{
    /// <summary>A flow list nested 30,000 deep (62 KB): crashed the YAML parser with a stack overflow.</summary>
    public static string DeepFlow => "name: x\nmodel: " + new string('[', 30_000) + new string(']', 30_000) + "\n";

    /// <summary>Block mappings nested 100 deep.</summary>
    public static string DeepBlock
    {
        get
        {
            var text = new StringBuilder("name: x\n");
            for (var i = 0; i < 100; i++) text.Append(' ', i * 2).Append($"k{i}:\n");
            return text.Append(' ', 200).Append("leaf: 1\n").ToString();
        }
    }

    /// <summary>"Billion laughs": nine levels of nine aliases, a few hundred bytes that expand to 9^9 scalars.</summary>
    public static string AliasBomb
    {
        get
        {
            var text = new StringBuilder("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
            var previous = 'a';
            foreach (var c in "bcdefghi")
            {
                text.Append($"{c}: &{c} [").Append(string.Join(",", Enumerable.Repeat("*" + previous, 9))).Append("]\n");
                previous = c;
            }
            return text.ToString();
        }
    }

    /// <summary>The same bomb hidden in a sweep grid value, where the sweep reader walks it.</summary>
    public static string AliasBombInSweep => "name: x\n" + AliasBomb + "sweep:\n  grid:\n    optimizer.lr: [*i, *i, *i]\n";

    public static string Cycle => "name: &a [*a]\n";

    public static string UndefinedAlias => "name: x\nseed: *nowhere\n";

    /// <summary>A 2 MB name.</summary>
    public static string HugeScalar => "name: " + new string('x', 2_000_000) + "\n";

    /// <summary>150,000 list items in 450 KB: under the size limit, over the node limit.</summary>
    public static string ManyNodes => "name: x\nsweep:\n  grid:\n    optimizer.lr: [" + string.Join(",", Enumerable.Repeat("1", 150_000)) + "]\n";

    public static byte[] Binary(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Nul => "name: x\0\0\0\nseed: 1\n";

    public static string UnknownKeys => "name: x\nbogus: 1\nmodel:\n  dmodel: 3\n";

    /// <summary>A tab indenting line 4.</summary>
    public static string TabIndent => "name: x\nmodel:\n  arch: decoder-only\n\td_model: 64\n";
}
