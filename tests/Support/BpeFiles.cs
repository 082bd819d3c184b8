using System.Text;
using System.Text.Json;

namespace Training.Tests.Support;

/// <summary>
/// Writes a byte-level BPE tokenizer as Hugging Face saves GPT-2's: vocab.json (the 256 byte symbols in GPT-2's
/// byte-to-unicode order, then merged tokens, then the end-of-text token) and merges.txt (one merge per line, in rank order).
/// </summary>
public static class BpeFiles
{
    public static readonly string[] Merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"];

    public static void Write(string folder, string endOfText = "<|endoftext|>")
    {
        Directory.CreateDirectory(folder);
        var vocabulary = new Dictionary<string, int>();
        foreach (var symbol in ByteSymbols()) vocabulary[symbol] = vocabulary.Count;
        foreach (var merge in Merges) vocabulary[merge.Replace(" ", "")] = vocabulary.Count;
        vocabulary[endOfText] = vocabulary.Count;
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(vocabulary));
        File.WriteAllText(Path.Combine(folder, "merges.txt"), "#version: 0.2\n" + string.Join("\n", Merges) + "\n", new UTF8Encoding(false));
    }

    /// <summary>GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others map to code points from 256 on.</summary>
    private static IEnumerable<string> ByteSymbols()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        var symbols = new Dictionary<int, int>();
        foreach (var b in printable) symbols[b] = b;
        var next = 0;
        for (var b = 0; b < 256; b++)
            if (!symbols.ContainsKey(b)) symbols[b] = 256 + next++;
        return printable.Concat(Enumerable.Range(0, 256).Where(b => !printable.Contains(b))).Select(b => char.ConvertFromUtf32(symbols[b]));
    }
}
