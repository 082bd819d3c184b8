using Training.Shared.Data;
using Training.Shared.Objectives;
using Training.Shared.Models;
using NUnit.Framework;
using Training.Shared.Training;
using Training.Shared.Spec;

namespace Training.Tests.Spec;

[TestFixture]
public sealed class ExperimentYamlDocTests
{
    [Test]
    public void ExperimentYamlDoc_EveryKey_IsDocumented()
    {
        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "experiment-yaml.md"));

        var missing = SpecSchema.Keys.Where(key => !doc.Contains($"`{key}`", StringComparison.Ordinal)).ToList();

        Assert.That(missing, Is.Empty, "keys without a reference entry in docs/experiment-yaml.md");
    }

    [Test]
    public void ExperimentYamlDoc_EveryReferenceRow_IsASchemaKeyAndListsItsChoices()
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), "docs", "experiment-yaml.md"));
        // The key reference comes first; later tables (limits) may name a key again.
        var rows = lines.Where(l => RowKey(l) is not null).GroupBy(l => RowKey(l)!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);

        // Dotted names are keys (other tables start with architecture names such as `gpt`).
        Assert.That(rows.Keys.Where(k => k.Contains('.')).Except(SpecSchema.Keys), Is.Empty, "reference rows for keys the schema does not have");
        foreach (var key in SpecSchema.Keys)
        {
            var missing = SpecSchema.ChoicesOf(key).Where(c => !rows[key].Contains($"`{c}`", StringComparison.Ordinal)).ToList();
            Assert.That(missing, Is.Empty, $"{key}: allowed values missing from its reference row");
        }
    }

    private static string? RowKey(string line) =>
        System.Text.RegularExpressions.Regex.Match(line, @"^\| `([a-z_]+(?:\.[a-z_]+)?)` \|") is { Success: true } m ? m.Groups[1].Value : null;

    [Test]
    public void ExperimentYamlDoc_FullExample_LoadsAndExpands()
    {
        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "experiment-yaml.md"));
        const string start = "<!-- full-example -->\n```yaml\n";
        var from = doc.IndexOf(start, StringComparison.Ordinal);
        Assert.That(from, Is.GreaterThanOrEqualTo(0), "the full example is marked with <!-- full-example -->");
        var yaml = doc[(from + start.Length)..doc.IndexOf("```", from + start.Length, StringComparison.Ordinal)];

        var spec = ExperimentLoader.Parse(yaml, "/experiments/example.yaml");

        Assert.That(TrialComponents.Expand(spec), Has.Count.EqualTo(16));
    }

    [Test]
    public void ExperimentYamlDoc_StagesExample_LoadsAndExpandsToTheTrialsAndGraphItNames()
    {
        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "experiment-yaml.md"));
        var section = doc.IndexOf("## Stages (pipelines)", StringComparison.Ordinal);
        Assert.That(section, Is.GreaterThanOrEqualTo(0), "docs/experiment-yaml.md has a stages section");
        var from = doc.IndexOf("```yaml\n", section, StringComparison.Ordinal) + "```yaml\n".Length;
        var yaml = doc[from..doc.IndexOf("```", from, StringComparison.Ordinal)];

        var spec = ExperimentLoader.Parse(yaml, "/experiments/pipe.yaml");
        var trials = TrialComponents.Expand(spec);

        Assert.That(trials.Select(t => t.Id), Is.EquivalentTo(new[] { "pipe-pretrain-t000", "pipe-pretrain-t001", "pipe-continue-t000", "pipe-baseline-t000" }));
        Assert.That(spec.Stages!.Stages.Select(s => (s.Name, string.Join(",", s.After))),
            Is.EquivalentTo(new[] { ("pretrain", ""), ("continue", "pretrain"), ("baseline", "") }));
        foreach (var id in trials.Select(t => t.Id)) Assert.That(doc[section..], Does.Contain($"`{id}`"));
        Assert.That(doc[section..], Does.Contain("`pretrain -> continue`"));
    }

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "Training.sln"))) return folder.FullName;
        }
        throw new DirectoryNotFoundException("no Training.sln above " + TestContext.CurrentContext.TestDirectory);
    }
}
