using YamlDotNet.Core;
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

    public sealed record Result(SourceDocument Document, YamlMappingNode? Sweep, SourcePosition SweepPosition);

    public static Result? Read(string text, ErrorList errors)
    {
        var root = LoadRoot(text, errors);
        if (root is null) return null;

        var document = new SourceDocument();
        YamlMappingNode? sweep = null;
        var sweepPosition = SourcePosition.Unknown;
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
            else
                errors.Add(PositionOf(keyNode), name, UnknownKeyMessage(name, "", SpecSchema.TopLevelNames));
        }
        return new Result(document, sweep, sweepPosition);
    }

    private static YamlMappingNode? LoadRoot(string text, ErrorList errors)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            errors.Add(new SourcePosition((int)e.Start.Line, (int)e.Start.Column), SyntaxKey, "YAML syntax error: " + e.Message);
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

    private static void ReadSection(string section, YamlNode keyNode, YamlNode valueNode, SourceDocument document, ErrorList errors)
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

    private static SourcePosition EndOf(string text)
    {
        var lines = text.Split('\n');
        var last = lines.Length;
        while (last > 1 && lines[last - 1].Trim().Length == 0) last--;
        return new SourcePosition(last, lines[last - 1].TrimEnd('\r').Length + 1);
    }
}
