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
        Assert.That(limits, Does.Contain($"| size | 1 MiB ({N(YamlLimits.MaxCharacters)} characters"));
        Assert.That(limits, Does.Contain($"| nesting | {YamlLimits.MaxDepth} levels"));
        Assert.That(limits, Does.Contain($"| nodes | {N(YamlLimits.MaxNodes)} |"));
        Assert.That(limits, Does.Contain($"| aliases | {N(YamlLimits.MaxAliases)} |"));
    }

    private static string N(int value) => value.ToString("N0", System.Globalization.CultureInfo.InvariantCulture);

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "Training.sln"))) return folder.FullName;
        throw new DirectoryNotFoundException("no Training.sln above " + TestContext.CurrentContext.TestDirectory);
    }
}
