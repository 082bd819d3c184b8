using System.Diagnostics;
using System.Text.RegularExpressions;
using NUnit.Framework;
using Training.Shared.Spec;
using Training.Tests.Support;

namespace Training.Tests.Hardening;

/// <summary>
/// Hostile experiment files given to the real <c>orchestrator validate</c> and to the loader in-process: each is refused
/// with one clear spec error (file, line, column) quickly, with a short output, and with bounded memory.
/// </summary>
public sealed class HostileYamlTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    public static IEnumerable<TestCaseData> HostileFiles()
    {
        yield return new TestCaseData("deep-flow", HostileYaml.DeepFlow, "nesting too deep").SetName("Validate_DeepFlowNesting_RefusedWithPosition");
        yield return new TestCaseData("deep-block", HostileYaml.DeepBlock, "nesting too deep").SetName("Validate_DeepBlockNesting_RefusedWithPosition");
        yield return new TestCaseData("bomb", HostileYaml.AliasBomb, "aliases expand to more than").SetName("Validate_AliasBomb_RefusedWithPosition");
        yield return new TestCaseData("bomb-sweep", HostileYaml.AliasBombInSweep, "aliases expand to more than").SetName("Validate_AliasBombInSweep_RefusedWithPosition");
        yield return new TestCaseData("cycle", HostileYaml.Cycle, "a cycle").SetName("Validate_AliasCycle_RefusedWithPosition");
        yield return new TestCaseData("undefined", HostileYaml.UndefinedAlias, "no anchor").SetName("Validate_UndefinedAlias_RefusedWithPosition");
        yield return new TestCaseData("huge", HostileYaml.HugeScalar, "too large").SetName("Validate_HugeScalar_RefusedAsTooLarge");
        yield return new TestCaseData("many", HostileYaml.ManyNodes, "too many nodes").SetName("Validate_ManyNodes_RefusedWithPosition");
        yield return new TestCaseData("nul", HostileYaml.Nul, ":1:8: (syntax): YAML syntax error: the character U+0000").SetName("Validate_NulBytes_RefusedAsSyntax");
        yield return new TestCaseData("unknown", HostileYaml.UnknownKeys, "unknown key \"bogus\"").SetName("Validate_UnknownKeys_NamedWithPosition");
        yield return new TestCaseData("tab", HostileYaml.TabIndent, ":4:1: (syntax): YAML syntax error: a tab").SetName("Validate_TabIndent_ReportedOnItsOwnLine");
    }

    [TestCaseSource(nameof(HostileFiles))]
    public async Task Validate_HostileFile_ClearErrorQuickly(string name, string text, string expected)
    {
        var path = _dir.Combine(name + ".yaml");
        File.WriteAllText(path, text);
        await AssertRefusedAsync(path, expected);
    }

    [Test]
    public async Task Validate_RandomBinaryBytes_ClearErrorQuickly()
    {
        for (var seed = 0; seed < 4; seed++)
        {
            var path = _dir.Combine($"binary-{seed}.yaml");
            File.WriteAllBytes(path, HostileYaml.Binary(64 * 1024, seed));
            await AssertRefusedAsync(path, path);
        }
    }

    [Test]
    public async Task Validate_EndlessDevice_RefusedAsTooLarge()
    {
        await AssertRefusedAsync("/dev/zero", "too large");
    }

    private async Task AssertRefusedAsync(string path, string expected)
    {
        var clock = Stopwatch.StartNew();
        var result = await CliProcess.RunAsync(_dir.Path, "validate", path);
        clock.Stop();
        Assert.That(result.ExitCode, Is.EqualTo(2), result.Output.Length > 4000 ? result.Output[..4000] : result.Output);
        Assert.That(result.Output, Does.Contain(expected));
        Assert.That(result.Output, Does.Match(Regex.Escape(path) + @":\d+:\d+: "), "the error names the file, line and column");
        Assert.That(result.Output.Length, Is.LessThan(20_000), "one short error, not a trace");
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)));
    }

    [Test]
    public void Parse_AliasBomb_RefusedWithinBoundedMemoryAndTime()
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(HostileYaml.AliasBombInSweep, "bomb.yaml"))!;
        clock.Stop();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(e.Errors, Has.Count.EqualTo(1));
        Assert.That(e.Errors[0].Message, Does.Contain("aliases expand to more than 100,000 nodes"));
        Assert.That(e.Errors[0].Line, Is.GreaterThan(1));
        Assert.That(allocated, Is.LessThan(64L << 20), "refused while parsing, before anything is expanded");
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
    }

    [Test]
    public void Parse_DeepNesting_ReportsTheLevelThatBreaksTheLimit()
    {
        var text = "name: x\nmodel: " + new string('[', YamlLimits.MaxDepth + 5) + new string(']', YamlLimits.MaxDepth + 5) + "\n";
        var e = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(text, "deep.yaml"))!;
        // The root mapping is level 1, so the first list past the limit is the 64th '[' (column 8 + 63).
        Assert.That((e.Errors[0].Line, e.Errors[0].Column, e.Errors[0].Key), Is.EqualTo((2, 8 + YamlLimits.MaxDepth - 1, "(syntax)")));
    }

    [Test]
    public void Parse_NestingAtTheLimit_IsNoLimitError()
    {
        // 63 lists inside the root mapping: exactly the limit; whatever the binder says, it is not about nesting.
        var text = "name: x\nmodel: " + new string('[', YamlLimits.MaxDepth - 1) + new string(']', YamlLimits.MaxDepth - 1) + "\n";
        var e = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(text, "deep.yaml"))!;
        Assert.That(e.Errors.Select(x => x.Message), Has.None.Contains("nesting too deep"));
    }

    [Test]
    public void Parse_FewAliases_StillAllowed()
    {
        // Anchors and aliases as people use them stay legal: the bound is on what they expand to.
        var text = "name: x\nseed: &s 7\ndata:\n  train: &d train\n  eval: *d\n";
        var e = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(text, "ok.yaml"))!;
        Assert.That(e.Errors.Select(x => x.Key), Has.None.EqualTo("(syntax)"));
        Assert.That(e.Errors.Select(x => x.Key), Has.None.EqualTo("data.eval"));
    }

    [Test]
    public void Parse_TabIndent_PointsAtTheTab()
    {
        var e = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(HostileYaml.TabIndent, "tab.yaml"))!;
        Assert.That((e.Errors[0].Line, e.Errors[0].Column), Is.EqualTo((4, 1)));
    }
}
