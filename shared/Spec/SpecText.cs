using System.Globalization;

namespace Training.Shared.Spec;

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
