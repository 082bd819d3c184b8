using System.Globalization;

namespace Training.Shared.Spec;

/// <summary>The YAML spelling of each enum value, both ways (the binder reads them, the writer writes them).</summary>
internal static class SpecNames
{
    public static readonly IReadOnlyDictionary<string, TokenizerKind> Tokenizers =
        new Dictionary<string, TokenizerKind> { ["byte"] = TokenizerKind.Byte, ["cl100k"] = TokenizerKind.Cl100k, ["char"] = TokenizerKind.Char };

    public static readonly IReadOnlyDictionary<string, ModelArch> Arches =
        new Dictionary<string, ModelArch>
        {
            ["encoder-decoder"] = ModelArch.EncoderDecoder,
            ["decoder-only"] = ModelArch.DecoderOnly,
            ["gpt"] = ModelArch.Gpt,
            ["parallel-gpt"] = ModelArch.ParallelGpt,
            ["lc-gpt"] = ModelArch.LinearlyCompressedGpt,
            ["cc-gpt"] = ModelArch.ConvCompressedGpt,
            ["encoder-only"] = ModelArch.EncoderOnly,
            ["ettin-decoder"] = ModelArch.EttinDecoder,
        };

    public static readonly IReadOnlyDictionary<string, MlpChoice> Mlps =
        new Dictionary<string, MlpChoice> { ["gelu"] = MlpChoice.Gelu, ["swiglu"] = MlpChoice.SwiGlu, ["geglu"] = MlpChoice.GeGlu };

    public static readonly IReadOnlyDictionary<string, NormPosition> NormPositions =
        new Dictionary<string, NormPosition> { ["pre"] = NormPosition.Pre, ["post"] = NormPosition.Post };

    public static readonly IReadOnlyDictionary<string, BranchesAtInference> Branches =
        new Dictionary<string, BranchesAtInference> { ["both"] = BranchesAtInference.Both, ["stronger"] = BranchesAtInference.Stronger };

    /// <summary>objective.kind; "auto" is not among them: the binder resolves it from model.arch.</summary>
    public static readonly IReadOnlyDictionary<string, ObjectiveKind> Objectives =
        new Dictionary<string, ObjectiveKind> { ["span-corruption"] = ObjectiveKind.SpanCorruption, ["clm"] = ObjectiveKind.Clm, ["mlm"] = ObjectiveKind.Mlm };

    public const string AutoObjective = "auto";

    public static readonly IReadOnlyDictionary<string, OptimizerKind> Optimizers =
        new Dictionary<string, OptimizerKind> { ["adamw"] = OptimizerKind.AdamW, ["stable-adamw"] = OptimizerKind.StableAdamW };

    public static readonly IReadOnlyDictionary<string, ScheduleKind> Schedules =
        new Dictionary<string, ScheduleKind> { ["cosine"] = ScheduleKind.Cosine, ["wsd"] = ScheduleKind.Wsd, ["constant"] = ScheduleKind.Constant };

    public static string Of<T>(IReadOnlyDictionary<string, T> names, T value) where T : struct, Enum =>
        names.First(pair => pair.Value.Equals(value)).Key;
}

/// <summary>How numbers and strings are spelled in YAML the project writes.</summary>
internal static class SpecText
{
    /// <summary>Shortest text that reads back to the same double, always with a '.' or exponent
    /// so every YAML reader sees a float ("1.0e-08", "10000.0", "0.1").</summary>
    public static string Number(double value)
    {
        var text = value.ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e');
        if (text.Contains('.') || text.Contains("Infinity") || text.Contains("NaN")) return text;
        var exponent = text.IndexOf('e');
        return exponent >= 0 ? text[..exponent] + ".0" + text[exponent..] : text + ".0";
    }

    public static string Integer(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Plain when it cannot be mistaken for anything else, otherwise double-quoted with escapes.</summary>
    public static string String(string value) => IsSafePlain(value) ? value : Quote(value);

    public static bool IsSafePlain(string value) =>
        value.Length > 0
        && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/')
        && char.IsAsciiLetter(value[0])
        && value is not ("true" or "false" or "yes" or "no" or "on" or "off" or "null" or "y" or "n");

    public static string Quote(string value)
    {
        var builder = new System.Text.StringBuilder("\"");
        foreach (var c in value)
        {
            builder.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when char.IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return builder.Append('"').ToString();
    }
}
