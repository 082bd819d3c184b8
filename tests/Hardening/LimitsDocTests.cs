using NUnit.Framework;
using Training.Shared.Spec;

namespace Training.Tests.Hardening;

/// <summary>The limits table in docs/experiment-yaml.md states the limits the reader enforces.</summary>
public sealed class LimitsDocTests
{
    [Test]
    public void ExperimentYamlDoc_Limits_MatchTheReader()
    {
        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "experiment-yaml.md"));
        var limits = doc[doc.IndexOf("### Limits", StringComparison.Ordinal)..];
        Assert.That(limits, Does.Contain($"| size | 1 MiB ({YamlLimits.MaxCharacters:N0} characters"));
        Assert.That(limits, Does.Contain($"| nesting | {YamlLimits.MaxDepth} levels"));
        Assert.That(limits, Does.Contain($"| nodes | {YamlLimits.MaxNodes:N0} |"));
        Assert.That(limits, Does.Contain($"| aliases | {YamlLimits.MaxAliases:N0} |"));
    }

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "Training.sln"))) return folder.FullName;
        throw new DirectoryNotFoundException("no Training.sln above " + TestContext.CurrentContext.TestDirectory);
    }
}
