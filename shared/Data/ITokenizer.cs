namespace Training.Shared.Data;

/// <summary>Text to ids and back. <see cref="Encode"/> adds no special tokens; <see cref="Decode"/> skips them.</summary>
public interface ITokenizer
{
    string Name { get; }
    int VocabSize { get; }
    SpecialTokens Special { get; }
    int[] Encode(string text);
    string Decode(IEnumerable<int> ids);
}
