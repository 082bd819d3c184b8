using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Training.Shared.Spec;

/// <summary>
/// Reads YAML text (YamlDotNet's representation model, which keeps line/column marks) into a
/// <see cref="SourceDocument"/>, rejecting keys the schema does not know with a "did you mean".
/// The sweep section is returned as its node for <see cref="SweepReader"/>.
/// </summary>
internal static class SourceReader
{
    public const string SyntaxKey = "(syntax)";
    public const string FileKey = "(file)";

    public sealed record Result(SourceDocument Document, YamlMappingNode? Sweep, SourcePosition SweepPosition)
    {
        /// <summary>The stages section's node (for <see cref="StageReader"/>) and where its key was written.</summary>
        public YamlMappingNode? Stages { get; init; }
        public SourcePosition StagesPosition { get; init; }
    }

    public static Result? Read(string text, ErrorList errors)
    {
        var root = LoadRoot(text, errors);
        if (root is null) return null;

        var document = new SourceDocument();
        YamlMappingNode? sweep = null;
        var sweepPosition = SourcePosition.Unknown;
        YamlMappingNode? stages = null;
        var stagesPosition = SourcePosition.Unknown;
        foreach (var (keyNode, valueNode) in root.Children)
        {
            var name = KeyName(keyNode, "", errors);
            if (name is null) continue;
            if (SpecSchema.Find(name) is { Section: "" })
                document.Set(name, ToValue(valueNode));
            else if (SpecSchema.Sections.Contains(name))
                ReadSection(name, keyNode, valueNode, document, errors);
            else if (name == SpecSchema.SweepSection)
            {
                sweepPosition = PositionOf(keyNode);
                if (valueNode is YamlMappingNode mapping) sweep = mapping;
                else errors.Add(PositionOf(valueNode), name, "expected a mapping with grid and/or random");
            }
            else if (name == SpecSchema.StagesSection)
            {
                stagesPosition = PositionOf(keyNode);
                if (valueNode is YamlMappingNode mapping && mapping.Children.Count > 0) stages = mapping;
                else errors.Add(PositionOf(valueNode), name, "expected a mapping of stage names to stages (each with after:, sections and sweep)");
            }
            else
                errors.Add(PositionOf(keyNode), name, UnknownKeyMessage(name, "", SpecSchema.TopLevelNames));
        }
        return new Result(document, sweep, sweepPosition) { Stages = stages, StagesPosition = stagesPosition };
    }

    private static YamlMappingNode? LoadRoot(string text, ErrorList errors)
    {
        // The limits are checked on the parser's event stream first, so a hostile file (nesting thousands deep,
        // an alias bomb, megabytes of text) is refused before YamlDotNet builds or expands anything.
        if (!YamlLimits.Check(text, errors)) return null;
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            AddSyntaxError(text, e, errors);
            return null;
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet 18 throws this (not a YamlException) when the text ends inside a flow collection or quote.
            errors.Add(EndOf(text), SyntaxKey, "YAML syntax error: unexpected end of file (an unclosed '[', '{' or quote?)");
            return null;
        }

        if (stream.Documents.Count > 1)
        {
            errors.Add(PositionOf(stream.Documents[1].RootNode), FileKey,
                $"a file holds one experiment; found {stream.Documents.Count} YAML documents");
            return null;
        }
        var root = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
        if (root is null || (root is YamlScalarNode scalar && ScalarOf(scalar).Text is null))
        {
            errors.Add(SourcePosition.FileStart, FileKey,
                "the file is empty: an experiment needs at least name, data.train, model.arch and objective.kind");
            return null;
        }
        if (root is not YamlMappingNode mapping)
        {
            errors.Add(PositionOf(root), FileKey, "expected a mapping of keys (name, data, model, ...) at the top of the file");
            return null;
        }
        return mapping;
    }

    internal static void ReadSection(string section, YamlNode keyNode, YamlNode valueNode, SourceDocument document, ErrorList errors)
    {
        document.SetSection(section, PositionOf(keyNode));
        var leaves = SpecSchema.InSection(section).Select(k => k.Leaf).ToList();
        if (valueNode is YamlScalarNode empty && ScalarOf(empty).Text is null) return; // `model:` alone = all defaults
        if (valueNode is not YamlMappingNode mapping)
        {
            errors.Add(PositionOf(valueNode), section, "expected a mapping with keys: " + string.Join(", ", leaves));
            return;
        }
        foreach (var (childKey, childValue) in mapping.Children)
        {
            var leaf = KeyName(childKey, section + ".", errors);
            if (leaf is null) continue;
            var path = section + "." + leaf;
            if (SpecSchema.Find(path) is null)
                errors.Add(PositionOf(childKey), path, UnknownKeyMessage(leaf, section, leaves));
            else
                document.Set(path, ToValue(childValue));
        }
    }

    /// <summary>"unknown key "dmodel"; did you mean "d_model"? allowed keys in model: ..."; also finds keys put in the wrong section.</summary>
    internal static string UnknownKeyMessage(string written, string section, IReadOnlyList<string> allowed)
    {
        var where = section == "" ? "at the top level" : "in " + section;
        // A key that exists word for word in another section beats a fuzzy match here ("lr" under model).
        var elsewhere = SpecSchema.All.FirstOrDefault(k => k.Leaf == written && k.Section != section && !section.StartsWith("sweep"));
        var nearest = Suggest.Nearest(written, allowed, 1);
        var hint = elsewhere is not null ? $"; did you mean {elsewhere.Path}?"
            : nearest.Count > 0 ? $"; did you mean \"{nearest[0]}\"?"
            : "";
        return $"unknown key \"{written}\"{hint} allowed keys {where}: {string.Join(", ", allowed)}";
    }

    internal static string? KeyName(YamlNode keyNode, string prefix, ErrorList errors)
    {
        if (keyNode is YamlScalarNode scalar && scalar.Value is { Length: > 0 } name) return name;
        errors.Add(PositionOf(keyNode), prefix + "?", "keys must be plain names");
        return null;
    }

    internal static SourceValue ToValue(YamlNode node) => node switch
    {
        YamlScalarNode scalar => new ScalarValue(ScalarOf(scalar)),
        YamlSequenceNode sequence => new ListValue(sequence.Children.Select(ToValue).ToList(), PositionOf(sequence)),
        YamlMappingNode mapping => new MappingValue(PositionOf(node))
        {
            Entries = mapping.Children
                .Select(c => (Key: (c.Key as YamlScalarNode)?.Value ?? "?", KeyPosition: PositionOf(c.Key), Value: ToValue(c.Value)))
                .ToList(),
        },
        _ => new MappingValue(PositionOf(node)),
    };

    internal static SourceScalar ScalarOf(YamlScalarNode scalar)
    {
        var quoted = scalar.Style != ScalarStyle.Plain || (!scalar.Tag.IsEmpty && scalar.Tag.Value == "tag:yaml.org,2002:str");
        var text = scalar.Value;
        if (!quoted && (text is null || text is "" or "~" or "null" or "Null" or "NULL")) text = null;
        return new SourceScalar(text, quoted, PositionOf(scalar));
    }

    internal static SourcePosition PositionOf(YamlNode node) => new((int)node.Start.Line, (int)node.Start.Column);

    /// <summary>
    /// A parser error, at the parser's position; a tab in indentation (which YAML forbids) is named as such, at the
    /// tab itself: YamlDotNet reports it at the end of the token before it, often a line early.
    /// </summary>
    internal static void AddSyntaxError(string text, YamlException e, ErrorList errors)
    {
        if (TabIndentAfter(text, (int)e.Start.Line) is { } tab)
        {
            errors.Add(tab, SyntaxKey, "YAML syntax error: a tab in the indentation; YAML indents with spaces only");
            return;
        }
        errors.Add(new SourcePosition((int)e.Start.Line, (int)e.Start.Column), SyntaxKey, "YAML syntax error: " + e.Message);
    }

    /// <summary>The first tab in a line's leading whitespace, on the reported line or the two after it.</summary>
    private static SourcePosition? TabIndentAfter(string text, int reportedLine)
    {
        var lines = text.Split('\n');
        for (var line = Math.Max(1, reportedLine); line <= Math.Min(lines.Length, reportedLine + 2); line++)
        {
            var content = lines[line - 1];
            for (var column = 0; column < content.Length && content[column] is ' ' or '\t'; column++)
                if (content[column] == '\t') return new SourcePosition(line, column + 1);
        }
        return null;
    }

    internal static SourcePosition EndOf(string text)
    {
        var lines = text.Split('\n');
        var last = lines.Length;
        while (last > 1 && lines[last - 1].Trim().Length == 0) last--;
        return new SourcePosition(last, lines[last - 1].TrimEnd('\r').Length + 1);
    }
}

/// <summary>
/// The limits on an experiment file, enforced on YamlDotNet's parser events before any node is built or any alias
/// expanded: the text's size, how deep collections nest, and how many nodes the document holds once every alias is
/// expanded (an alias counts as the whole node it names, so a "billion laughs" file is refused after a few kilobytes
/// of parsing). Each breach is one normal spec error with line and column.
/// </summary>
public static class YamlLimits
{
    /// <summary>Largest experiment file, in characters of text (UTF-16 code units; 1 MiB of ASCII).</summary>
    public const int MaxCharacters = 1 << 20;

    /// <summary>Deepest nesting of mappings and sequences.</summary>
    public const int MaxDepth = 64;

    /// <summary>Most nodes (scalars, mappings, sequences) with aliases expanded.</summary>
    public const int MaxNodes = 100_000;

    /// <summary>Most alias references in one file.</summary>
    public const int MaxAliases = 1_000;

    /// <summary>The first character YAML does not allow (C0/C1 controls but tab, LF, CR, NEL; DEL; U+FFFE/FFFF; lone surrogates).</summary>
    private static (SourcePosition At, int Code)? FirstNonPrintable(string text)
    {
        var line = 1;
        var lineStart = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\n')
            {
                line++;
                lineStart = i + 1;
                continue;
            }
            var bad = c switch
            {
                '\t' or '\r' or '\u0085' => false,
                < ' ' or '\u007F' => true,
                >= '\u0080' and <= '\u009F' => true,
                '\uFFFE' or '\uFFFF' => true,
                _ when char.IsHighSurrogate(c) => !(i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])),
                _ when char.IsLowSurrogate(c) => !(i > 0 && char.IsHighSurrogate(text[i - 1])),
                _ => false,
            };
            if (bad) return (new SourcePosition(line, i - lineStart + 1), c);
        }
        return null;
    }

    /// <summary>False (with one error added) when the text breaks a limit or does not parse.</summary>
    internal static bool Check(string text, ErrorList errors)
    {
        if (text.Length > MaxCharacters)
        {
            errors.Add(SourcePosition.FileStart, SourceReader.FileKey,
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the file is too large: {text.Length:N0} characters, at most {MaxCharacters:N0} (1 MiB) are read"));
            return false;
        }
        if (FirstNonPrintable(text) is { } bad)
        {
            // YamlDotNet stops at a NUL as if the file ended there; YAML allows no control characters at all.
            errors.Add(bad.At, SourceReader.SyntaxKey, $"YAML syntax error: the character U+{bad.Code:X4} is not allowed in YAML text");
            return false;
        }
        var parser = new Parser(new StringReader(text));
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal); // anchor -> expanded node count
        var open = new Stack<(string? Anchor, long NodesAtStart)>();
        long nodes = 0;
        var aliases = 0;
        try
        {
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                var at = new SourcePosition((int)current.Start.Line, (int)current.Start.Column);
                switch (current)
                {
                    case NodeEvent { } node when node is SequenceStart or MappingStart:
                        if (open.Count >= MaxDepth)
                        {
                            errors.Add(at, SourceReader.SyntaxKey, $"nesting too deep: more than {MaxDepth} levels of mappings and lists");
                            return false;
                        }
                        open.Push((node.Anchor.IsEmpty ? null : node.Anchor.Value, nodes));
                        nodes++;
                        break;
                    case SequenceEnd or MappingEnd:
                        var (anchor, start) = open.Pop();
                        if (anchor is not null) sizes[anchor] = nodes - start;
                        break;
                    case Scalar scalar:
                        nodes++;
                        if (!scalar.Anchor.IsEmpty) sizes[scalar.Anchor.Value] = 1;
                        break;
                    case AnchorAlias alias:
                        var name = alias.Value.Value;
                        if (++aliases > MaxAliases)
                        {
                            errors.Add(at, SourceReader.SyntaxKey, $"too many aliases: more than {MaxAliases}");
                            return false;
                        }
                        if (!sizes.TryGetValue(name, out var size))
                        {
                            var enclosing = open.Any(o => o.Anchor == name);
                            errors.Add(at, SourceReader.SyntaxKey, enclosing
                                ? $"the alias *{name} refers to a node that contains it (a cycle)"
                                : $"the alias *{name} refers to no anchor &{name} written before it");
                            return false;
                        }
                        nodes += size;
                        break;
                }
                if (nodes > MaxNodes)
                {
                    errors.Add(at, SourceReader.SyntaxKey, current is AnchorAlias
                        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"aliases expand to more than {MaxNodes:N0} nodes (an alias bomb?)")
                        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"too many nodes: more than {MaxNodes:N0} values, mappings and lists"));
                    return false;
                }
            }
        }
        catch (YamlException e)
        {
            SourceReader.AddSyntaxError(text, e, errors);
            return false;
        }
        catch (InvalidOperationException)
        {
            errors.Add(SourceReader.EndOf(text), SourceReader.SyntaxKey, "YAML syntax error: unexpected end of file (an unclosed '[', '{' or quote?)");
            return false;
        }
        return true;
    }
}
