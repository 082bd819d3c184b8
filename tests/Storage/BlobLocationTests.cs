using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage;

public class BlobLocationTests
{
    [Test]
    public void Parse_PlainRelativePath_IsAbsoluteLocalFolder()
    {
        var location = BlobLocation.Parse("runs/checkpoints");
        Assert.Multiple(() =>
        {
            Assert.That(location.Kind, Is.EqualTo(BlobLocationKind.LocalFolder));
            Assert.That(location.Folder, Is.EqualTo(Path.GetFullPath("runs/checkpoints")));
            Assert.That(location.ToString(), Is.EqualTo(Path.GetFullPath("runs/checkpoints")));
        });
    }

    [Test]
    public void Parse_FileUri_IsThatFolder()
    {
        var location = BlobLocation.Parse("file:///srv/training/ckpt");
        Assert.Multiple(() =>
        {
            Assert.That(location.Kind, Is.EqualTo(BlobLocationKind.LocalFolder));
            Assert.That(location.Folder, Is.EqualTo("/srv/training/ckpt"));
        });
    }

    [Test]
    public void Parse_AzureWithPrefix_SplitsAccountContainerPrefix()
    {
        var location = BlobLocation.Parse("azure://prod-store/checkpoints/team/a/");
        Assert.Multiple(() =>
        {
            Assert.That(location.Kind, Is.EqualTo(BlobLocationKind.Azure));
            Assert.That(location.Account, Is.EqualTo("prod-store"));
            Assert.That(location.Container, Is.EqualTo("checkpoints"));
            Assert.That(location.Prefix, Is.EqualTo("team/a"));
            Assert.That(location.ToString(), Is.EqualTo("azure://prod-store/checkpoints/team/a"));
            Assert.That(location.CredentialVariablePrefix, Is.EqualTo("TRAINING_STORAGE_PROD_STORE_"));
            Assert.That(location.Child("run-1").ToString(), Is.EqualTo("azure://prod-store/checkpoints/team/a/run-1"));
        });
    }

    [Test]
    public void Parse_AzureWithoutPrefix_HasEmptyPrefixAndRoundTrips()
    {
        var location = BlobLocation.Parse("azure://acct/ckpt");
        Assert.Multiple(() =>
        {
            Assert.That(location.Prefix, Is.Empty);
            Assert.That(BlobLocation.Parse(location.ToString()), Is.EqualTo(location));
            Assert.That(location.Child("r").Prefix, Is.EqualTo("r"));
        });
    }

    [TestCase("s3://bucket/x", "unknown scheme 's3'")]
    [TestCase("azure://acct", "no valid container name")]
    [TestCase("azure:///container/x", "no valid account")]
    [TestCase("azure://acct/Upper-Case", "no valid container name ('Upper-Case')")]
    [TestCase("azure://acct/a--b", "no valid container name")]
    [TestCase("azure://acct/ckpt/a/../b", "invalid prefix")]
    [TestCase("file://server/share", "not a local file URI")]
    [TestCase("   ", "empty storage location")]
    public void Parse_BadUri_ThrowsNamingUriAndExpectation(string uri, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => BlobLocation.Parse(uri))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.Message, Does.Contain(expected));
            if (!string.IsNullOrWhiteSpace(uri)) Assert.That(error.Message, Does.Contain(uri.Trim()));
            Assert.That(error.Message, Does.Contain("expected"));
        });
    }

    [TestCase("azure://acct/ckpt/p?sv=2024-01-01&sig=TOPSECRETSIGNATURE", "TOPSECRETSIGNATURE")]
    [TestCase("azure://acct:TOPSECRETKEY@acct/ckpt", "TOPSECRETKEY")]
    [TestCase("azur://acct/ckpt?sig=TOPSECRETSIGNATURE", "TOPSECRETSIGNATURE")]
    public void Parse_CredentialInUri_RefusedWithoutEchoingIt(string uri, string secret)
    {
        var error = Assert.Throws<ArgumentException>(() => BlobLocation.Parse(uri))!;
        Assert.That(error.Message, Does.Not.Contain(secret));
        Assert.That(error.Message, Does.Contain("TRAINING_STORAGE_").Or.Contain("unknown scheme"));
    }

    [Test]
    public void Open_AzureWithoutCredentials_ThrowsNamingTheVariables()
    {
        var error = Assert.Throws<ArgumentException>(() => BlobStores.Open(BlobLocation.Parse("azure://my-acct/ckpt"), _ => null))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.Message, Does.Contain("azure://my-acct/ckpt"));
            Assert.That(error.Message, Does.Contain("TRAINING_STORAGE_MY_ACCT_CONNECTION_STRING"));
            Assert.That(error.Message, Does.Contain("TRAINING_STORAGE_MY_ACCT_SAS"));
            Assert.That(error.Message, Does.Contain("TRAINING_STORAGE_MY_ACCT_ENDPOINT"));
        });
    }

    [Test]
    public void Open_SasTokenWithoutEndpoint_ThrowsWithoutTheToken()
    {
        var error = Assert.Throws<ArgumentException>(() => BlobStores.Open(BlobLocation.Parse("azure://acct/ckpt"),
            name => name == "TRAINING_STORAGE_ACCT_SAS" ? "sv=2024-01-01&sig=TOPSECRETSIGNATURE" : null))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.Message, Does.Contain("TRAINING_STORAGE_ACCT_ENDPOINT"));
            Assert.That(error.Message, Does.Not.Contain("TOPSECRETSIGNATURE"));
        });
    }

    [Test]
    public void Open_ConnectionStringFromFile_OpensStoreWhoseLocationHidesTheKey()
    {
        using var dir = new TempDirectory();
        var file = dir.Combine("connection");
        File.WriteAllText(file, AzuriteService.ConnectionStringFor(10000) + "\n");
        var store = BlobStores.Open(BlobLocation.Parse("azure://devstoreaccount1/ckpt/p"),
            name => name == "TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING_FILE" ? file : null);
        Assert.Multiple(() =>
        {
            Assert.That(store, Is.InstanceOf<AzureBlobStore>());
            Assert.That(store.Location, Is.EqualTo("azure://devstoreaccount1/ckpt/p"));
            Assert.That(store.ToString(), Does.Not.Contain(AzuriteService.AccountKey));
        });
    }

    [Test]
    public void Open_MalformedConnectionString_ThrowsWithoutItsContent()
    {
        var error = Assert.Throws<ArgumentException>(() => BlobStores.Open(BlobLocation.Parse("azure://acct/ckpt"),
            name => name == "TRAINING_STORAGE_ACCT_CONNECTION_STRING" ? "AccountKey=TOPSECRETKEY;garbage" : null))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.Message, Does.Contain("TRAINING_STORAGE_ACCT_CONNECTION_STRING"));
            Assert.That(error.Message, Does.Not.Contain("TOPSECRETKEY"));
        });
    }

    [Test]
    public void Open_LocalLocation_IsLocalFolderStore()
    {
        using var dir = new TempDirectory();
        var store = BlobStores.Open(dir.Path);
        Assert.That(store, Is.InstanceOf<LocalFolderBlobStore>());
        Assert.That(store.Location, Is.EqualTo(dir.Path));
    }
}
