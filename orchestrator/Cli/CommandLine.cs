using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Runtime.CompilerServices;

// Shared by both programs: the worker compiles this file too (worker/Worker.csproj links it).
namespace Training.CommandLine;

/// <summary>A bad command line found after parsing (two options that exclude each other, a value the parser cannot
/// judge); shown as one sentence with where to read more, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Building blocks for the System.CommandLine definitions of <c>orchestrator</c> and <c>worker</c>: options whose values
/// are checked with messages that name the option (or the environment variable the value came from), help with
/// examples, errors as sentences that say what to do next with a suggestion for a mistyped command or option, and exit
/// code 2 for every usage error.
/// </summary>
internal static class CliKit
{
    public const int UsageExit = 2;

    private static readonly ConditionalWeakTable<Option, string> Variables = new();
    private static readonly ConditionalWeakTable<Command, string[]> ExampleLines = new();

    /// <summary>The environment variable an option falls back to (<c>PREFIX_NAME</c>: upper case, '-' as '_').</summary>
    public static string VariableName(string prefix, string option) => prefix + option.TrimStart('-').ToUpperInvariant().Replace('-', '_');

    /// <summary>Where an option's value came from, for messages: its name, or the variable it was read from.</summary>
    public static string SourceOf(ParseResult parse, Option option) =>
        parse.GetResult(option) is { Implicit: false } || !Variables.TryGetValue(option, out var variable) || Environment.GetEnvironmentVariable(variable) is not { Length: > 0 }
            ? option.Name : variable;

    public static string? FromEnvironment(string? variable) =>
        variable is not null && Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value ? value : null;

    private static T Remember<T>(T option, string? variable) where T : Option
    {
        if (variable is not null)
        {
            Variables.AddOrUpdate(option, variable);
            option.Description += $" (or ${variable})";
        }
        return option;
    }

    /// <summary>A text option; null when not given (nor its variable set). A <paramref name="secret"/> one does not read
    /// its variable itself (help would show the value as the default): the caller does, with <see cref="FromEnvironment"/>.</summary>
    public static Option<string?> Text(string name, string description, string valueName, string? variable = null, bool secret = false)
    {
        var option = new Option<string?>(name) { Description = description, HelpName = valueName };
        // A default would satisfy Required: only options with a variable have one.
        if (variable is not null && !secret) option.DefaultValueFactory = _ => FromEnvironment(variable);
        return Remember(option, variable);
    }

    /// <summary>A text option that takes one of <paramref name="choices"/>.</summary>
    public static Option<string?> Choice(string name, string description, params string[] choices)
    {
        var option = new Option<string?>(name) { Description = description, HelpName = string.Join('|', choices) };
        option.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<string?>();
            if (value is not null && !choices.Contains(value))
                r.AddError($"{name} must be {Alternatives(choices)}, got '{value}'");
        });
        option.CompletionSources.Add(choices);
        return option;
    }

    /// <summary>An integer option (at least <paramref name="min"/>); null when not given.</summary>
    public static Option<int?> Integer(string name, string description, int min = int.MinValue, string valueName = "N", string? variable = null) =>
        Remember(new Option<int?>(name)
        {
            Description = description,
            HelpName = valueName,
            CustomParser = r => ParseInteger(r, r.Tokens.Count == 1 ? r.Tokens[0].Value : null, name, min),
            DefaultValueFactory = r => FromEnvironment(variable) is { } raw ? ParseInteger(r, raw, variable!, min) : null,
        }, variable);

    private static int? ParseInteger(ArgumentResult result, string? raw, string source, int min)
    {
        if (raw is null)
        {
            result.AddError($"{source} needs a value");
            return null;
        }
        if (int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min) return value;
        result.AddError($"{source} must be an integer{(min > int.MinValue ? $" >= {min}" : "")}, got '{raw}'");
        return null;
    }

    /// <summary>A number option in [<paramref name="min"/>, <paramref name="max"/>]; null when not given.</summary>
    public static Option<double?> Number(string name, string description, double min, double max, string valueName = "F") =>
        new(name)
        {
            Description = description,
            HelpName = valueName,
            CustomParser = r =>
            {
                var raw = r.Tokens.Count == 1 ? r.Tokens[0].Value : null;
                if (raw is not null && double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
                    return value;
                r.AddError(raw is null ? $"{name} needs a value" : $"{name} must be a number in [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}], got '{raw}'");
                return null;
            },
        };

    /// <summary>A flag; with a variable, set when it is 1/true/yes (0/false/no/empty: not set; anything else is an error).</summary>
    public static Option<bool> Flag(string name, string description, string? variable = null) =>
        Remember(new Option<bool>(name)
        {
            Description = description,
            Arity = ArgumentArity.Zero,
            DefaultValueFactory = r => FromEnvironment(variable)?.Trim().ToLowerInvariant() switch
            {
                null or "0" or "false" or "no" => false,
                "1" or "true" or "yes" => true,
                var other =>
                    Fail(r, $"{variable} must be 1, true, yes, 0, false or no, got '{other}'"),
            },
        }, variable);

    private static bool Fail(ArgumentResult result, string message)
    {
        result.AddError(message);
        return false;
    }

    /// <summary>An option that may be given several times, one value each (<c>--set a=1 --set b=2</c>).</summary>
    public static Option<string[]> Repeated(string name, string description, string valueName) =>
        new(name)
        {
            Description = description,
            HelpName = valueName,
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
            DefaultValueFactory = _ => [],
        };

    public static Argument<string> Required(string name, string description) => new(name) { Description = description, Arity = ArgumentArity.ExactlyOne };

    public static Argument<string?> Optional(string name, string description) => new(name) { Description = description, Arity = ArgumentArity.ZeroOrOne };

    /// <summary>Example command lines shown at the end of the command's <c>--help</c>.</summary>
    public static T Examples<T>(T command, params string[] lines) where T : Command
    {
        ExampleLines.AddOrUpdate(command, lines);
        return command;
    }

    /// <summary>Help as the library writes it, then the command's examples and, for the root, <paramref name="notes"/>.</summary>
    private sealed class HelpWithExamples(SynchronousCommandLineAction standard, string? notes) : SynchronousCommandLineAction
    {
        // `submit --help` shows help even though the file argument is missing.
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parse)
        {
            standard.Invoke(parse);
            var output = parse.InvocationConfiguration.Output;
            var command = parse.CommandResult.Command;
            if (ExampleLines.TryGetValue(command, out var lines))
            {
                output.WriteLine("Examples:");
                foreach (var line in lines) output.WriteLine("  " + line);
                output.WriteLine();
            }
            if (command is RootCommand && notes is not null) output.WriteLine(notes.TrimEnd() + Environment.NewLine);
            return 0;
        }
    }

    /// <summary>Puts the examples (and the root's notes) into every command's help.</summary>
    public static void InstallHelp(RootCommand root, string? notes)
    {
        var help = root.Options.OfType<HelpOption>().Single();
        help.Action = new HelpWithExamples((SynchronousCommandLineAction)help.Action!, notes);
    }

    /// <summary>"orchestrator data import": the words that name the parsed command.</summary>
    public static string PathOf(CommandResult result, string program)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c; r = r.Parent)
            names.Insert(0, c.Command is RootCommand ? program : c.Command.Name);
        return string.Join(' ', names);
    }

    /// <summary>
    /// Parses and runs the command line. Parse errors are printed as sentences (with a suggestion for a mistyped command
    /// or option and the help to read) and give exit code 2; a <see cref="UsageException"/> from an action too. Other
    /// exceptions are left to the caller.
    /// </summary>
    public static async Task<int> RunAsync(RootCommand root, string program, string[] args)
    {
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is null or ParseErrorAction)
        {
            if (args.Length == 0 && root.Action is null)
            {
                // No command at all: the overview, as a usage error.
                await root.Parse(["--help"]).InvokeAsync();
                return UsageExit;
            }
            foreach (var message in Describe(parse, program).Distinct()) Console.Error.WriteLine($"{program}: {message}");
            Console.Error.WriteLine($"See '{PathOf(parse.CommandResult, program)} --help' for its usage and examples.");
            return UsageExit;
        }
        try
        {
            // Both programs handle Ctrl+C and SIGTERM themselves (checkpoint and stop, drain): the library must not end
            // the process or change its exit code on a signal.
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"{program}: {e.Message}");
            Console.Error.WriteLine($"See '{PathOf(parse.CommandResult, program)} --help' for its usage and examples.");
            return UsageExit;
        }
    }

    private static bool LooksLikeOption(string token) => token.Length > 1 && token[0] == '-' && !double.TryParse(token, CultureInfo.InvariantCulture, out _);

    /// <summary>The parse errors as sentences that say what was wrong and what to do.</summary>
    private static IEnumerable<string> Describe(ParseResult parse, string program)
    {
        var command = parse.CommandResult.Command;
        var path = PathOf(parse.CommandResult, program);
        var options = command.Options.Where(o => !o.Hidden).Concat(command.Parents.OfType<Command>().SelectMany(p => p.Options.Where(o => o.Recursive)))
            .Where(o => o is not HelpOption && o is not VersionOption).Select(o => o.Name).Distinct().Order(StringComparer.Ordinal).ToList();
        // A mistyped option lands in a positional argument (or among the unmatched tokens): name it as an option.
        var positional = parse.CommandResult.Children.OfType<ArgumentResult>().SelectMany(a => a.Tokens).Select(t => t.Value);
        var unknownOptions = positional.Concat(parse.UnmatchedTokens).Where(LooksLikeOption).Distinct().ToList();
        foreach (var token in unknownOptions)
        {
            var name = token.Split('=', 2)[0];
            var suggestion = Suggest(name, options);
            yield return $"unknown option {name} for '{path}'" + (suggestion is null ? "." : $"; did you mean {suggestion}?") +
                         (options.Count == 0 ? " It takes no options." : $" It takes {string.Join(", ", options)}.");
        }
        if (unknownOptions.Count > 0) yield break; // the rest are likely the unknown options' values
        var subcommands = command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).ToList();
        if (subcommands.Count > 0 && command.Action is null)
        {
            if (parse.UnmatchedTokens.FirstOrDefault() is { } word)
            {
                var suggestion = Suggest(word, subcommands);
                yield return $"unknown command '{(command is RootCommand ? word : $"{command.Name} {word}")}'" +
                             (suggestion is null ? "" : $"; did you mean '{(command is RootCommand ? suggestion : $"{command.Name} {suggestion}")}'?") +
                             $" The commands are: {string.Join(", ", subcommands)}.";
            }
            else
                yield return $"'{path}' needs a command: {string.Join(", ", subcommands)}.";
            yield break;
        }
        foreach (var token in parse.UnmatchedTokens)
        {
            var arguments = command.Arguments.Select(a => a.Name).ToList();
            yield return $"unexpected argument '{token}': '{path}' takes " +
                         (arguments.Count == 0 ? "no arguments" : string.Join(" ", command.Arguments.Select(a => a.Arity.MinimumNumberOfValues == 0 ? $"[{a.Name}]" : a.Name))) + ".";
        }
        foreach (var error in parse.Errors)
        {
            if (RequiredOption.Match(error.Message) is { Success: true } required
                && command.Options.FirstOrDefault(o => o.Name == required.Groups[1].Value) is { } missing)
            {
                yield return $"'{path}' needs {missing.Name} {missing.HelpName}: {missing.Description}.";
                continue;
            }
            switch (error.SymbolResult)
            {
                case ArgumentResult { Argument: var argument, Tokens.Count: 0 } when argument.Arity.MinimumNumberOfValues > 0 && error.SymbolResult.Parent is CommandResult:
                    yield return $"'{path}' needs {argument.Name}: {argument.Description}.";
                    break;
                case OptionResult { Option: var option, Tokens.Count: 0, Implicit: false } when option.Arity.MinimumNumberOfValues > 0:
                    yield return $"{option.Name} needs a value ({option.HelpName ?? "see --help"}).";
                    break;
                case OptionResult { Option: var option, Tokens.Count: > 1 } when option.Arity.MaximumNumberOfValues == 1:
                    yield return $"{option.Name} was given more than once; give it once.";
                    break;
                case CommandResult when error.Message.StartsWith("Unrecognized command or argument", StringComparison.Ordinal):
                    break; // said above
                default:
                    yield return error.Message;
                    break;
            }
        }
    }

    private static readonly System.Text.RegularExpressions.Regex RequiredOption = new("^Option '([^']+)' is required");

    private static string Alternatives(IReadOnlyList<string> choices) =>
        choices.Count == 1 ? choices[0] : string.Join(", ", choices.Take(choices.Count - 1)) + " or " + choices[^1];

    /// <summary>The candidate closest to a mistyped word, if one is close enough (a few edits, or the word starts it).</summary>
    public static string? Suggest(string word, IEnumerable<string> candidates)
    {
        var bare = word.TrimStart('-');
        var best = candidates
            .Select(c => (Candidate: c, Distance: Distance(bare, c.TrimStart('-'))))
            .Where(c => c.Distance <= Math.Max(1, bare.Length / 3) || (bare.Length >= 3 && c.Candidate.TrimStart('-').StartsWith(bare, StringComparison.Ordinal)))
            .OrderBy(c => c.Distance).ThenBy(c => c.Candidate, StringComparer.Ordinal)
            .FirstOrDefault();
        return best.Candidate;
    }

    /// <summary>Edit distance with adjacent swaps ("sumbit" is one edit from "submit").</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }

    /// <summary>
    /// A bash completion script for the given programs: each Tab asks the program itself through System.CommandLine's
    /// <c>[suggest:POSITION]</c> directive, so completions always match the installed version's commands and options.
    /// </summary>
    public static string BashCompletion(params string[] programs) => $$"""
        # bash completion for {{string.Join(" and ", programs)}}: load with  source <(orchestrator completion bash)
        _training_cli_complete() {
            local line="${COMP_LINE:0:COMP_POINT}"
            local rest=""
            [[ "$line" == *" "* ]] && rest="${line#* }"
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "[suggest:${#rest}]" "$rest" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _training_cli_complete {{string.Join(" ", programs)}}

        """;
}
