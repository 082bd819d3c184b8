using System.Diagnostics;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cli;

/// <summary>
/// The two programs' command lines as a user meets them (real processes): help with a description and examples on
/// every command, usage errors as sentences naming the option or argument with exit code 2, suggestions for mistyped
/// commands and options, and shell completion through the [suggest] directive.
/// </summary>
public class CommandLineTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    /// <summary>Each command, and the options it must keep offering (names users and scripts already rely on).</summary>
    private static readonly object[] CommandsAndOptions =
    [
        new object[] { "submit", new[] { "--runs", "--state", "--storage", "--cluster", "--token-file", "--detach", "--follow" } },
        new object[] { "validate", new[] { "--runs" } },
        new object[] { "inspect", new[] { "--json" } },
        new object[] { "list", new[] { "--runs", "--state", "--cluster", "--token-file", "--json" } },
        new object[] { "status", new[] { "--runs", "--state", "--cluster", "--token-file", "--json" } },
        new object[] { "logs", new[] { "--trial", "--follow", "--json", "--runs", "--state", "--cluster", "--token-file" } },
        new object[] { "cancel", new[] { "--runs", "--state", "--cluster", "--token-file" } },
        new object[] { "resume", new[] { "--trial", "--steps", "--set", "--runs", "--state", "--cluster", "--token-file" } },
        new object[] { "serve", new[] { "--port", "--http-port", "--host", "--runs", "--state", "--secret", "--storage", "--token-file", "--data-root",
            "--public-read", "--dashboard-port", "--tls-cert", "--tls-key", "--tls-ca", "$ORCHESTRATOR_HTTP_PORT" } },
        new object[] { "dashboard", new[] { "--runs", "--state", "--port", "--host", "--token-file" } },
        new object[] { "data", new[] { "import", "synth-task" } },
        new object[] { "data import", new[] { "--from", "--out", "--rows-per-shard", "--format", "--eval-fraction", "--seed" } },
        new object[] { "data synth-task", new[] { "--kind", "--out", "--train", "--eval", "--seed", "--rows-per-shard" } },
        new object[] { "completion bash", Array.Empty<string>() },
    ];

    [TestCaseSource(nameof(CommandsAndOptions))]
    public async Task Help_OfEveryCommand_HasItsDescriptionOptionsAndExamples(string command, string[] options)
    {
        var help = await CliProcess.RunAsync(_dir.Path, [.. command.Split(' '), "--help"]);
        Assert.That(help.ExitCode, Is.EqualTo(0), help.Output);
        var examples = help.Stdout[(help.Stdout.IndexOf("Examples:", StringComparison.Ordinal) + 1)..];
        Assert.Multiple(() =>
        {
            Assert.That(help.Stdout, Does.StartWith("Description:"));
            Assert.That(help.Stdout, Does.Contain($"orchestrator {command}"));
            foreach (var option in options) Assert.That(help.Stdout, Does.Contain(option), option);
            Assert.That(help.Stdout, Does.Contain("Examples:"));
            Assert.That(examples, Does.Contain(command.StartsWith("completion", StringComparison.Ordinal) ? "completion bash" : $"orchestrator {command}"));
        });
    }

    [Test]
    public async Task Help_OfTheProgram_ListsEveryCommand_AndNoCommandIsAUsageError()
    {
        var help = await CliProcess.RunAsync(_dir.Path, "--help");
        var bare = await CliProcess.RunAsync(_dir.Path);
        var helpWord = await CliProcess.RunAsync(_dir.Path, "help", "logs");
        Assert.Multiple(() =>
        {
            Assert.That(help.ExitCode, Is.EqualTo(0), help.Output);
            foreach (var command in new[] { "submit", "validate", "inspect", "list", "status", "logs", "cancel", "resume", "serve", "dashboard", "data", "completion" })
                Assert.That(help.Stdout, Does.Contain($"\n  {command} "), command);
            Assert.That(help.Stdout, Does.Contain("Exit codes: 0 success, 1 a trial failed, 2 bad input, 130 cancelled"));
            Assert.That(bare.ExitCode, Is.EqualTo(2), "no command is bad input");
            Assert.That(bare.Stdout, Does.Contain("Commands:"));
            Assert.That(helpWord.ExitCode, Is.EqualTo(0));
            Assert.That(helpWord.Stdout, Does.Contain("orchestrator logs <RUN>"));
        });
    }

    [TestCase(new[] { "submit" }, "'orchestrator submit' needs EXPERIMENT.yaml")]
    [TestCase(new[] { "logs" }, "'orchestrator logs' needs RUN")]
    [TestCase(new[] { "status", "a", "b" }, "unexpected argument 'b': 'orchestrator status' takes [RUN]")]
    [TestCase(new[] { "resume", "latest", "--steps", "0" }, "--steps must be an integer >= 1, got '0'")]
    [TestCase(new[] { "resume", "latest", "--steps" }, "--steps needs a value")]
    [TestCase(new[] { "serve", "--http-port", "eighty" }, "--http-port must be an integer >= 0, got 'eighty'")]
    [TestCase(new[] { "status", "--runs", "a", "--runs", "b" }, "--runs was given more than once; give it once")]
    [TestCase(new[] { "data", "import", "--out", "x" }, "'orchestrator data import' needs --from DIR|FILE")]
    [TestCase(new[] { "data", "import", "--from", "a", "--out", "b", "--format", "csv" }, "--format must be plain, brown or task, got 'csv'")]
    [TestCase(new[] { "data", "import", "--from", "a", "--out", "b", "--eval-fraction", "2" }, "--eval-fraction must be a number in [0, 0.9], got '2'")]
    [TestCase(new[] { "data", "synth-task", "--kind", "multiply", "--out", "x" }, "--kind must be reverse, sort or add, got 'multiply'")]
    [TestCase(new[] { "data", "imprt" }, "unknown command 'data imprt'; did you mean 'data import'?")]
    [TestCase(new[] { "data" }, "'orchestrator data' needs a command: import, synth-task")]
    [TestCase(new[] { "list", "--jsn" }, "unknown option --jsn for 'orchestrator list'; did you mean --json?")]
    [TestCase(new[] { "submit", "x.yaml", "--detach", "--follow" }, "--detach and --follow exclude each other")]
    public async Task UsageErrors_ExitTwoWithASentenceNamingWhatIsWrong(string[] args, string expected)
    {
        var result = await CliProcess.RunAsync(_dir.Path, args);
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2), result.Output);
            Assert.That(result.Stderr, Does.Contain("orchestrator: " + expected));
            Assert.That(result.Stderr, Does.Contain("--help' for its usage and examples"), "says where to read more");
            Assert.That(result.Output, Does.Not.Contain("   at "), "no stack trace");
            Assert.That(Directory.Exists(_dir.Combine("runs")), Is.False, "nothing ran");
        });
    }

    [Test]
    public async Task Worker_MistypedOptionAndStrayArgument_ExitTwoWithSuggestion_HelpHasExamples()
    {
        async Task<(int Code, string Output)> Worker(params string[] args)
        {
            await using var worker = new WatchedProcess("worker.dll", args, new Dictionary<string, string> { ["TRAINING_CLUSTER_SECRET"] = "s" });
            return (await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)), worker.Output);
        }
        var mistyped = await Worker("--sed", "127.0.0.1:1");
        var stray = await Worker("--seed", "127.0.0.1:1", "now");
        var help = await Worker("--help");
        Assert.Multiple(() =>
        {
            Assert.That(mistyped.Code, Is.EqualTo(2), mistyped.Output);
            Assert.That(mistyped.Output, Does.Contain("worker: unknown option --sed for 'worker'; did you mean --seed?"));
            Assert.That(stray.Code, Is.EqualTo(2), stray.Output);
            Assert.That(stray.Output, Does.Contain("worker: unexpected argument 'now': 'worker' takes no arguments"));
            Assert.That(help.Code, Is.EqualTo(0), help.Output);
            foreach (var option in new[] { "--seed", "--role", "--device", "--threads", "--host", "--port", "--secret", "--join-timeout", "--rejoin-timeout",
                         "--drain-timeout", "--tls-cert", "--tls-key", "--tls-ca", "$WORKER_THREADS" })
                Assert.That(help.Output, Does.Contain(option), option);
            Assert.That(help.Output, Does.Contain("Examples:").And.Contain("worker --seed 10.0.0.5:4053"));
        });
    }

    [Test]
    public async Task Worker_SecretFromTheEnvironment_IsNeverShownInHelp()
    {
        await using var worker = new WatchedProcess("worker.dll", ["--help"], new Dictionary<string, string> { ["WORKER_SECRET"] = "do-not-print-me" });
        Assert.That(await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(0), worker.Output);
        Assert.That(worker.Output, Does.Contain("$WORKER_SECRET").And.Not.Contain("do-not-print-me"));
    }

    [Test]
    public async Task BashCompletion_CompletesCommandsOptionsAndChoices_ByAskingTheProgram()
    {
        var script = await CliProcess.RunAsync(_dir.Path, "completion", "bash");
        Assert.That(script.ExitCode, Is.EqualTo(0), script.Output);
        File.WriteAllText(_dir.Combine("completion.bash"), script.Stdout);
        // `orchestrator` on PATH, as bin/orchestrator is once installed.
        var bin = _dir.Combine("bin");
        Directory.CreateDirectory(bin);
        var program = Path.Combine(bin, "orchestrator");
        File.WriteAllText(program, $"#!/bin/sh\nexec dotnet '{Path.Combine(TestContext.CurrentContext.TestDirectory, "orchestrator.dll")}' \"$@\"\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        async Task<string[]> Complete(params string[] words)
        {
            var line = string.Join(' ', words);
            var bash = $"""
                source '{_dir.Combine("completion.bash")}'
                COMP_LINE='{line}'; COMP_POINT=${"{"}#COMP_LINE{"}"}
                COMP_WORDS=({string.Join(' ', words.Select(w => $"'{w}'"))}); COMP_CWORD={words.Length - 1}
                _training_cli_complete
                printf '%s\n' "${"{"}COMPREPLY[@]{"}"}"
                """;
            var info = new ProcessStartInfo("bash", ["-c", bash]) { RedirectStandardOutput = true, RedirectStandardError = true };
            info.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
            using var process = Process.Start(info)!;
            var output = await process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync();
            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }

        Assert.That(await Complete("orchestrator", "sta"), Is.EqualTo(new[] { "status" }));
        Assert.That(await Complete("orchestrator", "logs", "latest", "--fo"), Is.EqualTo(new[] { "--follow" }));
        Assert.That(await Complete("orchestrator", "data", "import", "--format", ""), Is.EquivalentTo(new[] { "plain", "brown", "task" }));
        Assert.That(await Complete("orchestrator", "data", ""), Is.SupersetOf(new[] { "import", "synth-task" }));
    }
}
