using System.Security.Cryptography;
using System.Text;

namespace Training.Shared.Data;

/// <summary>
/// A tokenizer's identity as distillation compares it: a teacher and a student must map text to the same ids, or the
/// teacher's distribution over "token 17" means something else to the student. The id is the tokenizer's name, its
/// special tokens and a hash of what every id decodes to, so two tokenizers built the same way from the same files (or
/// the same shards, for <c>char</c>) agree and any difference in the vocabulary shows.
/// </summary>
public static class TokenizerIds
{
    public static string Of(ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var special = tokenizer.Special;
        for (var id = 0; id < tokenizer.VocabSize; id++)
        {
            if (id == special.Pad || id == special.Bos || id == special.Eos || id >= special.FirstSentinelId) continue;
            hash.AppendData(BitConverter.GetBytes(id));
            hash.AppendData(Encoding.UTF8.GetBytes(tokenizer.Decode([id])));
        }
        var digest = Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
        return $"{tokenizer.Name}/v{tokenizer.VocabSize}/pad{special.Pad},bos{special.Bos},eos{special.Eos},sentinels{special.SentinelCount}/{digest}";
    }
}
