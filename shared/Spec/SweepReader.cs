using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Training.Shared.Spec;

/// <summary>
/// Reads and checks the sweep section when the file is loaded: keys must be sweepable schema keys,
/// grid and choice values must be valid for their key, distributions must suit the key's type.
/// Combinations (kv_heads vs heads, ...) and random draws are checked per trial by <see cref="SweepExpander"/>.
/// </summary>
internal static class SweepReader
{
    /// <summary>More trials than this is almost certainly a mistake in the grid.</summary>
    public const int MaxTrials = 10_000;

    private static readonly IReadOnlyList<string> SectionKeys = ["grid", "random", "equal_flops"];
    private static readonly IReadOnlyList<string> RandomKeys = ["samples", "params"];
    private static readonly IReadOnlyList<string> EqualFlopsKeys = ["size_by", "reference", "variants"];

    private static readonly IReadOnlyDictionary<string, SweepDistribution> Distributions = new Dictionary<string, SweepDistribution>
    {
        ["uniform"] = SweepDistribution.Uniform,
        ["log_uniform"] = SweepDistribution.LogUniform,
        ["int_uniform"] = SweepDistribution.IntUniform,
        ["choice"] = SweepDistribution.Choice,
    };

    public static SweepSpec? Read(YamlMappingNode node, SourcePosition sweepPosition, ErrorList errors)
    {
        var before = errors.Count;
        var grid = new List<SweepAxis>();
        SweepRandom? random = null;
        SweepEqualFlops? equalFlops = null;
        foreach (var (keyNode, valueNode) in node.Children)
        {
            var name = SourceReader.KeyName(keyNode, "sweep.", errors);
            if (name == "grid") grid = ReadGrid(valueNode, errors);
            else if (name == "random") random = ReadRandom(valueNode, errors);
            else if (name == "equal_flops") equalFlops = ReadEqualFlops(valueNode, SourceReader.PositionOf(keyNode), errors);
            else if (name is not null)
                errors.Add(SourceReader.PositionOf(keyNode), "sweep." + name, SourceReader.UnknownKeyMessage(name, "sweep", SectionKeys));
        }
        if (errors.Count > before) return null;

        if (grid.Count == 0 && random is null && equalFlops is null)
            errors.Add(sweepPosition, "sweep", "a sweep needs grid, random and/or equal_flops (remove it to run one trial)");
        foreach (var param in random?.Params ?? [])
        {
            if (grid.Any(axis => axis.Key == param.Key))
                errors.Add(param.Position, "sweep.random.params." + param.Key,
                    $"{param.Key} is also in sweep.grid; vary a key in one place only");
        }
        if (equalFlops is not null)
        {
            var elsewhere = grid.Select(a => a.Key).Concat(random?.Params.Select(p => p.Key) ?? []).ToHashSet();
            foreach (var key in equalFlops.Keys.Where(elsewhere.Contains))
                errors.Add(equalFlops.Position, "sweep.equal_flops",
                    $"{key} is set by sweep.equal_flops and also swept by grid or random; vary a key in one place only");
        }
        var trials = grid.Aggregate(1.0, (product, axis) => product * axis.Values.Count) * (random?.Samples ?? 1)
                     * (1 + (equalFlops?.Variants.Count ?? 0));
        if (trials > MaxTrials)
            errors.Add(sweepPosition, "sweep", $"the sweep expands to {trials:0} trials; at most {MaxTrials} are allowed");

        return errors.Count > before ? null : new SweepSpec(new SpecList<SweepAxis>(grid), random, equalFlops);
    }

    /// <summary>
    /// equal_flops: <c>size_by</c> (model.layers, the default, or model.d_model), an optional <c>reference</c>
    /// mapping of settings, and a non-empty list of <c>variants</c>, each a mapping of dotted key -> value.
    /// </summary>
    private static SweepEqualFlops? ReadEqualFlops(YamlNode node, SourcePosition position, ErrorList errors)
    {
        const string label = "sweep.equal_flops";
        if (node is not YamlMappingNode mapping)
        {
            errors.Add(SourceReader.PositionOf(node), label,
                "expected a mapping: size_by (model.layers or model.d_model), reference (optional) and variants (a list of settings)");
            return null;
        }
        var before = errors.Count;
        var sizeBy = SweepEqualFlops.LayersKey;
        var reference = new List<SweepSetting>();
        List<SweepVariant>? variants = null;
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var name = SourceReader.KeyName(keyNode, label + ".", errors);
            switch (name)
            {
                case null:
                    break;
                case "size_by":
                    if (valueNode is YamlScalarNode { Value: { } text } && SweepEqualFlops.SizeKeys.Contains(text))
                        sizeBy = text;
                    else
                        errors.Add(SourceReader.PositionOf(valueNode), label + ".size_by",
                            $"expected one of: {string.Join(", ", SweepEqualFlops.SizeKeys)} (the key chosen to match the reference's FLOPs)");
                    break;
                case "reference":
                    reference = ReadSettings(valueNode, label + ".reference", allowEmpty: true, errors) ?? [];
                    break;
                case "variants":
                    variants = ReadVariants(valueNode, label + ".variants", errors);
                    break;
                default:
                    errors.Add(SourceReader.PositionOf(keyNode), label + "." + name, SourceReader.UnknownKeyMessage(name, label, EqualFlopsKeys));
                    break;
            }
        }
        if (variants is null && errors.Count == before)
            errors.Add(position, label + ".variants", "required key is missing: a list of variants, e.g. [{model.encoder_fraction: 0.5}, {model.arch: decoder-only}]");
        foreach (var (setting, where) in reference.Select(s => (s, label + ".reference"))
                     .Concat((variants ?? []).SelectMany((v, i) => v.Settings.Select(s => (s, $"{label}.variants[{i}]")))))
        {
            if (setting.Key == sizeBy)
                errors.Add(setting.Value.Position, $"{where}.{setting.Key}",
                    $"{sizeBy} is what equal_flops chooses for each variant (size_by); leave it out here and set it in the model section for the reference");
        }
        return errors.Count > before || variants is null
            ? null
            : new SweepEqualFlops(sizeBy, new SpecList<SweepSetting>(reference), new SpecList<SweepVariant>(variants), position);
    }

    private static List<SweepVariant>? ReadVariants(YamlNode node, string label, ErrorList errors)
    {
        if (node is not YamlSequenceNode { Children.Count: > 0 } sequence)
        {
            errors.Add(SourceReader.PositionOf(node), label, "expected a non-empty list of variants, each a mapping of dotted key -> value");
            return null;
        }
        var variants = new List<SweepVariant>();
        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var item = sequence.Children[i];
            var settings = ReadSettings(item, $"{label}[{i}]", allowEmpty: false, errors);
            if (settings is not null) variants.Add(new SweepVariant(new SpecList<SweepSetting>(settings), SourceReader.PositionOf(item)));
        }
        return variants.Count == sequence.Children.Count ? variants : null;
    }

    /// <summary>A mapping of sweepable dotted keys to values valid for their key.</summary>
    private static List<SweepSetting>? ReadSettings(YamlNode node, string label, bool allowEmpty, ErrorList errors)
    {
        if (node is not YamlMappingNode mapping || (!allowEmpty && mapping.Children.Count == 0))
        {
            errors.Add(SourceReader.PositionOf(node), label, "expected a mapping of dotted key -> value, e.g. {model.arch: decoder-only}");
            return null;
        }
        var settings = new List<SweepSetting>();
        var ok = true;
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var key = CheckedKey(keyNode, label + ".", errors);
            if (key is null)
            {
                ok = false;
                continue;
            }
            var position = SourceReader.PositionOf(valueNode);
            string? error;
            SweepValue? value = null;
            if (valueNode is not YamlScalarNode scalarNode)
                error = $"expected {key.Rule.Allowed}, got a collection";
            else if (SourceReader.ScalarOf(scalarNode) is not { Text: { } text } scalar)
                error = $"expected {key.Rule.Allowed}, got nothing";
            else
            {
                error = key.Rule.Convert(scalar).Error;
                value = new SweepValue(text, position);
            }
            if (error is not null || value is null)
            {
                errors.Add(position, $"{label}.{key.Path}", error ?? "no value");
                ok = false;
                continue;
            }
            settings.Add(new SweepSetting(key.Path, value));
        }
        return ok ? settings : null;
    }

    private static List<SweepAxis> ReadGrid(YamlNode node, ErrorList errors)
    {
        var axes = new List<SweepAxis>();
        if (node is not YamlMappingNode mapping)
        {
            errors.Add(SourceReader.PositionOf(node), "sweep.grid", "expected a mapping of dotted key -> list of values, e.g. model.d_model: [128, 256]");
            return axes;
        }
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var key = CheckedKey(keyNode, "sweep.grid.", errors);
            if (key is null) continue;
            var label = "sweep.grid." + key.Path;
            if (valueNode is not YamlSequenceNode { Children.Count: > 0 } sequence)
            {
                errors.Add(SourceReader.PositionOf(valueNode), label, $"expected a non-empty list of values, each {key.Rule.Allowed}");
                continue;
            }
            var values = CheckedValues(key, sequence, label, errors);
            if (values is not null) axes.Add(new SweepAxis(key.Path, values, SourceReader.PositionOf(keyNode)));
        }
        return axes;
    }

    private static SweepRandom? ReadRandom(YamlNode node, ErrorList errors)
    {
        if (node is not YamlMappingNode mapping)
        {
            errors.Add(SourceReader.PositionOf(node), "sweep.random", "expected a mapping with samples and params");
            return null;
        }
        int? samples = null;
        List<SweepParam>? parameters = null;
        bool sawSamples = false, sawParams = false;
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var name = SourceReader.KeyName(keyNode, "sweep.random.", errors);
            if (name == "samples")
            {
                sawSamples = true;
                var rule = new IntegerRule(1, MaxTrials);
                var (value, error) = valueNode is YamlScalarNode scalar && SourceReader.ScalarOf(scalar) is { Text: not null } written
                    ? rule.Convert(written)
                    : (null, $"expected {rule.Allowed}, got {(valueNode is YamlScalarNode ? "nothing" : "a collection")}");
                if (error is not null) errors.Add(SourceReader.PositionOf(valueNode), "sweep.random.samples", error);
                else samples = (int)(long)value!;
            }
            else if (name == "params")
            {
                sawParams = true;
                parameters = ReadParams(valueNode, errors);
            }
            else if (name is not null)
                errors.Add(SourceReader.PositionOf(keyNode), "sweep.random." + name, SourceReader.UnknownKeyMessage(name, "sweep.random", RandomKeys));
        }
        var position = SourceReader.PositionOf(node);
        if (!sawSamples)
            errors.Add(position, "sweep.random.samples", "required key is missing: the number of random draws, an integer >= 1");
        if (!sawParams)
            errors.Add(position, "sweep.random.params", "required key is missing: a mapping of dotted key -> distribution");
        return samples is { } n && parameters is not null ? new SweepRandom(n, new SpecList<SweepParam>(parameters)) : null;
    }

    private static List<SweepParam>? ReadParams(YamlNode node, ErrorList errors)
    {
        if (node is not YamlMappingNode { Children.Count: > 0 } mapping)
        {
            errors.Add(SourceReader.PositionOf(node), "sweep.random.params",
                "expected a mapping of dotted key -> distribution, e.g. optimizer.lr: {log_uniform: [1.0e-4, 1.0e-3]}");
            return null;
        }
        var parameters = new List<SweepParam>();
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var key = CheckedKey(keyNode, "sweep.random.params.", errors);
            if (key is null) continue;
            var label = "sweep.random.params." + key.Path;
            var position = SourceReader.PositionOf(keyNode);
            if (valueNode is not YamlMappingNode { Children.Count: 1 } distribution
                || distribution.Children.Single() is not (YamlScalarNode { Value: { } kindName } kindNode, var argument))
            {
                errors.Add(SourceReader.PositionOf(valueNode), label,
                    "expected one distribution: {uniform: [low, high]}, {log_uniform: [low, high]}, {int_uniform: [low, high]} or {choice: [a, b, ...]}");
                continue;
            }
            if (!Distributions.TryGetValue(kindName, out var kind))
            {
                var nearest = Suggest.Nearest(kindName, Distributions.Keys, 1);
                errors.Add(SourceReader.PositionOf(kindNode), label,
                    $"unknown distribution \"{kindName}\"{(nearest.Count > 0 ? $"; did you mean \"{nearest[0]}\"?" : "")} " +
                    $"allowed: {string.Join(", ", Distributions.Keys)}");
                continue;
            }
            if (argument is not YamlSequenceNode { Children.Count: > 0 } sequence)
            {
                errors.Add(SourceReader.PositionOf(argument), label, $"{kindName} needs a list: {(kind == SweepDistribution.Choice ? "[a, b, ...]" : "[low, high]")}");
                continue;
            }
            var param = kind == SweepDistribution.Choice
                ? CheckedValues(key, sequence, label, errors) is { } choices
                    ? new SweepParam(key.Path, kind, 0, 0, choices, position)
                    : null
                : CheckedRange(key, kind, kindName, sequence, label, position, errors);
            if (param is not null) parameters.Add(param);
        }
        return parameters;
    }

    private static SweepParam? CheckedRange(SchemaKey key, SweepDistribution kind, string kindName, YamlSequenceNode sequence,
        string label, SourcePosition position, ErrorList errors)
    {
        var integers = kind == SweepDistribution.IntUniform;
        if (integers ? key.Rule is not IntegerRule : key.Rule is not NumberRule)
        {
            var instead = key.Rule switch
            {
                IntegerRule => "int_uniform or choice",
                NumberRule => "uniform, log_uniform or choice",
                _ => "choice",
            };
            errors.Add(position, label, $"{kindName} does not fit {key.Path}, which takes {key.Rule.Allowed}; use {instead}");
            return null;
        }
        var bounds = sequence.Children.Select(ParseBound).ToList();
        if (bounds.Count != 2 || bounds.Any(b => b is null) || (integers && bounds.Any(b => b != Math.Floor(b!.Value))))
        {
            errors.Add(SourceReader.PositionOf(sequence), label, $"{kindName} needs [low, high], two {(integers ? "integers" : "numbers")}");
            return null;
        }
        var (low, high) = (bounds[0]!.Value, bounds[1]!.Value);
        if (low > high)
            errors.Add(SourceReader.PositionOf(sequence), label, $"low ({SpecText.Number(low)}) must be <= high ({SpecText.Number(high)})");
        else if (kind == SweepDistribution.LogUniform && low <= 0)
            errors.Add(SourceReader.PositionOf(sequence), label, $"log_uniform needs low > 0, got {SpecText.Number(low)}");
        else
            return new SweepParam(key.Path, kind, low, high, SpecList<SweepValue>.Empty, position);
        return null;
    }

    private static double? ParseBound(YamlNode node) =>
        node is YamlScalarNode scalar
        && SourceReader.ScalarOf(scalar) is { IsQuoted: false, Text: { } text }
        && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
        && double.IsFinite(value)
            ? value
            : null;

    /// <summary>Each value must be valid for the key on its own (type, allowed names, range).</summary>
    private static SpecList<SweepValue>? CheckedValues(SchemaKey key, YamlSequenceNode sequence, string label, ErrorList errors)
    {
        var values = new List<SweepValue>();
        var ok = true;
        for (var i = 0; i < sequence.Children.Count; i++)
        {
            var item = sequence.Children[i];
            var position = SourceReader.PositionOf(item);
            string? error;
            if (item is not YamlScalarNode scalarNode)
                error = $"expected {key.Rule.Allowed}, got a collection";
            else if (SourceReader.ScalarOf(scalarNode) is not { Text: { } text } scalar)
                error = $"expected {key.Rule.Allowed}, got nothing";
            else
            {
                error = key.Rule.Convert(scalar).Error;
                values.Add(new SweepValue(text, position));
            }
            if (error is null) continue;
            errors.Add(position, $"{label}[{i}]", error);
            ok = false;
        }
        return ok ? new SpecList<SweepValue>(values) : null;
    }

    /// <summary>A sweep key must be a sweepable schema key; otherwise list the nearest allowed ones.</summary>
    private static SchemaKey? CheckedKey(YamlNode keyNode, string prefix, ErrorList errors)
    {
        var name = SourceReader.KeyName(keyNode, prefix, errors);
        if (name is null) return null;
        var position = SourceReader.PositionOf(keyNode);
        switch (SpecSchema.Find(name))
        {
            case { Sweepable: true } key:
                return key;
            case { } fixedKey:
                errors.Add(position, prefix + name, fixedKey.Rule is PathListRule
                    ? $"{name} cannot be swept: data is fixed per experiment (write one experiment per data set)"
                    : $"{name} cannot be swept: it identifies the experiment (every trial keeps the experiment's {name})");
                return null;
            default:
                var nearest = Suggest.Closest(name, SpecSchema.SweepableKeys, 5);
                errors.Add(position, prefix + name,
                    $"unknown sweep key \"{name}\"; nearest allowed keys: {string.Join(", ", nearest)} " +
                    "(a sweep key is a dotted key of the schema, see docs/experiment-yaml.md)");
                return null;
        }
    }
}
