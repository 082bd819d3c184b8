namespace Training.Orchestrator.Cli;

/// <summary>Thrown for bad command lines; the message is shown with the command's usage.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Positional arguments and <c>--name value</c> / <c>--flag</c> options, checked against what a command accepts.
/// With an environment prefix, an option not on the command line comes from <c>PREFIX_NAME</c> (upper case, '-' as
/// '_'), so a container can be configured by environment alone; errors name whichever was used.</summary>
public sealed class ArgReader
{
    private readonly List<string> _positional = new();
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _every = new(StringComparer.Ordinal);
    private readonly string? _environmentPrefix;
    private readonly IReadOnlySet<string> _valueOptions;
    private readonly IReadOnlySet<string> _flags;

    public ArgReader(IEnumerable<string> args, IReadOnlySet<string> valueOptions, IReadOnlySet<string>? flags = null, string? environmentPrefix = null)
    {
        flags ??= new HashSet<string>();
        _environmentPrefix = environmentPrefix;
        _valueOptions = valueOptions;
        _flags = flags;
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
                (_every.TryGetValue(name, out var list) ? list : _every[name] = []).Add(inlineValue);
            }
            else
            {
                var known = valueOptions.Concat(flags).Select(o => "--" + o).OrderBy(o => o).ToList();
                throw new UsageException($"unknown option --{name}; this command takes {(known.Count == 0 ? "no options" : string.Join(", ", known))}");
            }
        }
    }

    public IReadOnlyList<string> Positional => _positional;

    /// <summary>The environment variable an option falls back to; null without a prefix.</summary>
    public string? VariableFor(string name) => _environmentPrefix is null ? null : _environmentPrefix + name.ToUpperInvariant().Replace('-', '_');

    /// <summary>Where an option's value came from, for messages: <c>--name</c> or the variable's name.</summary>
    public string SourceOf(string name) =>
        !_options.ContainsKey(name) && VariableFor(name) is { } variable && Environment.GetEnvironmentVariable(variable) is { Length: > 0 } ? variable : "--" + name;

    /// <summary>A flag given on the command line, or its variable set to 1/true/yes (0/false/no/empty: not set).</summary>
    public bool Has(string name)
    {
        if (_options.ContainsKey(name)) return true;
        if (!_flags.Contains(name) || VariableFor(name) is not { } variable) return false;
        return Environment.GetEnvironmentVariable(variable)?.Trim().ToLowerInvariant() switch
        {
            null or "" or "0" or "false" or "no" => false,
            "1" or "true" or "yes" => true,
            var other => throw new UsageException($"{variable} must be 1, true, yes, 0, false or no, got '{other}'"),
        };
    }

    public string? Value(string name)
    {
        if (_options.TryGetValue(name, out var v)) return v;
        return _valueOptions.Contains(name) && VariableFor(name) is { } variable && Environment.GetEnvironmentVariable(variable) is { Length: > 0 } fromEnvironment
            ? fromEnvironment : null;
    }

    /// <summary>Every value an option repeated on the command line was given, in order (<c>--set a=1 --set b=2</c>).</summary>
    public IReadOnlyList<string> Values(string name) => _every.TryGetValue(name, out var values) ? values : [];

    public string Required(string name) =>
        Value(name) ?? throw new UsageException($"missing --{name}{(VariableFor(name) is { } variable ? $" (or {variable})" : "")}");

    public int Int(string name, int fallback, int min = int.MinValue)
    {
        var raw = Value(name);
        if (raw is null) return fallback;
        if (!int.TryParse(raw, out var value) || value < min)
            throw new UsageException($"{SourceOf(name)} must be an integer{(min > int.MinValue ? $" >= {min}" : "")}, got '{raw}'");
        return value;
    }

    public double Double(string name, double fallback, double min, double max)
    {
        var raw = Value(name);
        if (raw is null) return fallback;
        if (!double.TryParse(raw, System.Globalization.CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw new UsageException($"{SourceOf(name)} must be a number in [{min}, {max}], got '{raw}'");
        return value;
    }

    public string Single(string what)
    {
        if (_positional.Count != 1) throw new UsageException($"expected one {what}, got {(_positional.Count == 0 ? "none" : string.Join(" ", _positional))}");
        return _positional[0];
    }
}
