using NUnit.Framework;
using Training.Shared.Spec;

namespace Training.Tests.Spec;

/// <summary>data.train / data.eval given as storage URIs: azure:// stays a URI (the workers list it with their own
/// credentials), file:// becomes its path, and a malformed URI is an error at its line that quotes no secret.</summary>
public class DataLocationTests
{
    private readonly SpecFixture fixture = new();

    [OneTimeTearDown]
    public void TearDown() => fixture.Dispose();

    private static string Yaml(string train, string eval = "") => $"""
        name: uris
        data:
          train: {train}
        {(eval.Length > 0 ? $"  eval: {eval}" : "")}
        model:
          arch: encoder-decoder
        objective:
          kind: span-corruption
        """;

    [Test]
    public void Load_AzureUris_AreKeptAsWrittenWithoutTouchingStorage()
    {
        // No credentials and no storage exist here: loading a file never lists blobs.
        var spec = ExperimentLoader.Load(fixture.WriteYaml(Yaml("azure://corpus/fineweb/edu/train", "azure://corpus/fineweb/edu/eval/*.parquet")));

        Assert.That(spec.Data.Train, Is.EqualTo(new[] { "azure://corpus/fineweb/edu/train" }));
        Assert.That(spec.Data.Eval, Is.EqualTo(new[] { "azure://corpus/fineweb/edu/eval/*.parquet" }));
    }

    [Test]
    public void Load_FileUri_BecomesTheAbsolutePathAndIsCheckedLikeOne()
    {
        var spec = ExperimentLoader.Load(fixture.WriteYaml(Yaml($"file://{fixture.PathOf("data/train")}")));
        Assert.That(spec.Data.Train, Is.EqualTo(new[] { fixture.PathOf("data/train") }));

        var missing = Assert.Throws<SpecException>(() => ExperimentLoader.Load(fixture.WriteYaml(Yaml($"file://{fixture.PathOf("data/none")}"))))!;
        Assert.That(missing.Errors.Single().Message, Does.Contain("no such file or directory: " + fixture.PathOf("data/none")));
    }

    [TestCase("azure://corpus/Bad_Container/train", "no valid container name")]
    [TestCase("azure://corpus/fineweb", "names a container but no shards in it")]
    [TestCase("azure://corpus/fineweb/a/../b", "invalid prefix")]
    [TestCase("s3://bucket/train", "unknown scheme 's3'")]
    public void Load_MalformedStorageUri_IsReportedAtItsLine(string uri, string expected)
    {
        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Load(fixture.WriteYaml(Yaml(uri))))!.Errors.Single();

        Assert.That((error.Line, error.Column, error.Key), Is.EqualTo((3, 10, "data.train")));
        Assert.That(error.Message, Does.Contain(expected));
    }

    [Test]
    public void Load_UriWithASasToken_NeverQuotesIt()
    {
        var error = Assert.Throws<SpecException>(() =>
            ExperimentLoader.Load(fixture.WriteYaml(Yaml("azure://corpus/fineweb/train?sv=2024&sig=TOPSECRET"))))!.Errors.Single();

        Assert.That(error.Message, Does.Contain("must not carry credentials"));
        Assert.That(error.Message, Does.Not.Contain("TOPSECRET"));
    }
}
