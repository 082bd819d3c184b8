namespace Training.Orchestrator.Cli;

/// <summary>Thrown for bad command lines; the message is shown with the command's usage.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Positional arguments and <c>--name value</c> / <c>--flag</c> options, checked against what a command accepts.</summary>
public sealed class ArgReader
{
    private readonly List<string> _positional = new();
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);

    public ArgReader(IEnumerable<string> args, IReadOnlySet<string> valueOptions, IReadOnlySet<string>? flags = null)
    {
        flags ??= new HashSet<string>();
        using var e = args.GetEnumerator();
        while (e.MoveNext())
        {
            var arg = e.Current;
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg == "--")
            {
                _positional.Add(arg);
                continue;
            }
            var name = arg[2..];
            string? inlineValue = null;
            var eq = name.IndexOf('=');
            if (eq >= 0)
            {
                inlineValue = name[(eq + 1)..];
                name = name[..eq];
            }
            if (flags.Contains(name))
            {
                _options[name] = null;
            }
            else if (valueOptions.Contains(name))
            {
                if (inlineValue is null)
                {
                    if (!e.MoveNext()) throw new UsageException($"option --{name} needs a value");
                    inlineValue = e.Current;
                }
                _options[name] = inlineValue;
            }
            else
            {
                var known = valueOptions.Concat(flags).Select(o => "--" + o).OrderBy(o => o).ToList();
                throw new UsageException($"unknown option --{name}; this command takes {(known.Count == 0 ? "no options" : string.Join(", ", known))}");
            }
        }
    }

    public IReadOnlyList<string> Positional => _positional;

    public bool Has(string name) => _options.ContainsKey(name);

    public string? Value(string name) => _options.TryGetValue(name, out var v) ? v : null;

    public string Required(string name) => Value(name) ?? throw new UsageException($"missing --{name}");

    public int Int(string name, int fallback, int min = int.MinValue)
    {
        var raw = Value(name);
        if (raw is null) return fallback;
        if (!int.TryParse(raw, out var value) || value < min)
            throw new UsageException($"--{name} must be an integer{(min > int.MinValue ? $" >= {min}" : "")}, got '{raw}'");
        return value;
    }

    public double Double(string name, double fallback, double min, double max)
    {
        var raw = Value(name);
        if (raw is null) return fallback;
        if (!double.TryParse(raw, System.Globalization.CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw new UsageException($"--{name} must be a number in [{min}, {max}], got '{raw}'");
        return value;
    }

    public string Single(string what)
    {
        if (_positional.Count != 1) throw new UsageException($"expected one {what}, got {(_positional.Count == 0 ? "none" : string.Join(" ", _positional))}");
        return _positional[0];
    }
}
