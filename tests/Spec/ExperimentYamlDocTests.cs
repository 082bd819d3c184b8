using NUnit.Framework;
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
    public void ExperimentYamlDoc_FullExample_LoadsAndExpands()
    {
        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "experiment-yaml.md"));
        const string start = "<!-- full-example -->\n```yaml\n";
        var from = doc.IndexOf(start, StringComparison.Ordinal);
        Assert.That(from, Is.GreaterThanOrEqualTo(0), "the full example is marked with <!-- full-example -->");
        var yaml = doc[(from + start.Length)..doc.IndexOf("```", from + start.Length, StringComparison.Ordinal)];

        var spec = ExperimentLoader.Parse(yaml, "/experiments/example.yaml");

        Assert.That(SweepExpander.Expand(spec), Has.Count.EqualTo(16));
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
