using System.Diagnostics;
using System.Text;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>Starts one Azurite for the tests of this namespace and stops it after them.</summary>
[SetUpFixture]
public sealed class AzuriteSetUp
{
    [OneTimeSetUp]
    public void Start() => SharedAzurite.Start();

    [OneTimeTearDown]
    public void Stop() => SharedAzurite.Stop();
}

/// <summary>The <see cref="IBlobStore"/> contract against real Azurite, through <see cref="BlobStores.Open(BlobLocation, Func{string, string?}?, AzureBlobStoreOptions?)"/>.</summary>
[Category("Azurite")]
public class AzureBlobStoreTests
{
    private readonly List<Exception> _retries = [];

    private static string NewContainer() => "t" + Guid.NewGuid().ToString("N");

    private AzureBlobStoreOptions Options(int retries = 3) => new()
    {
        Retry = new StorageRetryOptions
        {
            MaxRetryAttempts = retries,
            BaseDelay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromMilliseconds(500),
            AttemptTimeout = TimeSpan.FromSeconds(30),
            OnRetry = (_, e) => { lock (_retries) _retries.Add(e); },
        },
    };

    private IBlobStore Open(string container, string prefix = "run-1", AzureBlobStoreOptions? options = null) =>
        BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/{container}/{prefix}"),
            SharedAzurite.Instance.Environment, options ?? Options());

    [SetUp]
    public void ClearRetries() => _retries.Clear();

    [Test]
    public async Task PutThenGet_NewBlob_ReturnsSameBytes()
    {
        var store = Open(NewContainer());
        await store.PutAsync("trials/t0/a.bin", Encoding.UTF8.GetBytes("hello blob"));
        var back = await store.GetAsync("trials/t0/a.bin");
        Assert.That(Encoding.UTF8.GetString(back!), Is.EqualTo("hello blob"));
    }

    [Test]
    public async Task Put_CreateOnlyOverExisting_ThrowsAlreadyExistsWithoutRetryAndKeepsContent()
    {
        var store = Open(NewContainer());
        await store.PutAsync("manifest.json", "first"u8.ToArray(), createOnly: true);
        var error = Assert.ThrowsAsync<BlobAlreadyExistsException>(() => store.PutAsync("manifest.json", "second"u8.ToArray(), createOnly: true))!;
        Assert.Multiple(async () =>
        {
            Assert.That(error.Path, Is.EqualTo("manifest.json"));
            Assert.That(_retries, Is.Empty, "a 409/412 conflict is final");
            Assert.That(Encoding.UTF8.GetString((await store.GetAsync("manifest.json"))!), Is.EqualTo("first"));
        });
    }

    [Test]
    public async Task Put_OverwriteExisting_ReplacesContentAndETag()
    {
        var store = Open(NewContainer());
        await store.PutAsync("latest", "step-1"u8.ToArray());
        var before = await store.GetPropertiesAsync("latest");
        await store.PutAsync("latest", "step-0002"u8.ToArray());
        var after = await store.GetPropertiesAsync("latest");
        Assert.Multiple(async () =>
        {
            Assert.That(before!.Size, Is.EqualTo(6));
            Assert.That(after!.Size, Is.EqualTo(9));
            Assert.That(after.ETag, Is.Not.EqualTo(before.ETag).And.Not.Empty);
            Assert.That(Encoding.UTF8.GetString((await store.GetAsync("latest"))!), Is.EqualTo("step-0002"));
        });
    }

    [Test]
    public async Task GetAndProperties_MissingBlob_ReturnNullWithoutRetry()
    {
        var store = Open(NewContainer());
        await store.PutAsync("present", "x"u8.ToArray());
        Assert.Multiple(async () =>
        {
            Assert.That(await store.GetAsync("absent"), Is.Null);
            Assert.That(await store.GetPropertiesAsync("absent"), Is.Null);
            Assert.That(_retries, Is.Empty);
        });
    }

    [Test]
    public async Task GetAndList_ContainerNeverCreated_ReturnNothing()
    {
        var store = Open(NewContainer());
        Assert.Multiple(async () =>
        {
            Assert.That(await store.GetAsync("x"), Is.Null);
            Assert.That(await store.ListAsync(""), Is.Empty);
        });
    }

    [Test]
    public async Task GetRange_InsideAndPastEnd_ReturnsThoseBytesClampedToTheBlob()
    {
        var store = Open(NewContainer());
        var bytes = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        await store.PutAsync("shard.parquet", bytes);
        await store.PutAsync("empty", Array.Empty<byte>());
        Assert.Multiple(async () =>
        {
            Assert.That(await store.GetRangeAsync("shard.parquet", 10, 5), Is.EqualTo(bytes[10..15]));
            Assert.That(await store.GetRangeAsync("shard.parquet", 90, 50), Is.EqualTo(bytes[90..]));
            Assert.That(await store.GetRangeAsync("shard.parquet", 100, 10), Is.Empty);
            Assert.That(await store.GetRangeAsync("shard.parquet", 500, 10), Is.Empty);
            Assert.That(await store.GetRangeAsync("shard.parquet", 3, 0), Is.Empty);
            Assert.That(await store.GetRangeAsync("empty", 0, 10), Is.Empty);
            Assert.That((await store.GetPropertiesAsync("shard.parquet"))!.Size, Is.EqualTo(100));
        });
    }

    [Test]
    public void GetRange_MissingBlob_ThrowsFileNotFoundWithoutRetry()
    {
        var store = Open(NewContainer());
        var error = Assert.ThrowsAsync<FileNotFoundException>(() => store.GetRangeAsync("nope", 0, 10))!;
        Assert.That(error.Message, Does.Contain("nope"));
        Assert.That(_retries, Is.Empty, "a 404 is final");
    }

    [Test]
    public async Task List_ByPrefix_SortedOrdinallyAndRelativeToTheStorePrefix()
    {
        var container = NewContainer();
        var store = Open(container, "runs/r1");
        var neighbour = Open(container, "runs/r10");
        foreach (var path in new[] { "b/2", "a/Z", "a/b", "a/a/1", "c" }) await store.PutAsync(path, "x"u8.ToArray());
        await neighbour.PutAsync("a/other", "x"u8.ToArray());
        Assert.Multiple(async () =>
        {
            Assert.That(await store.ListAsync("a/"), Is.EqualTo(new[] { "a/Z", "a/a/1", "a/b" }));
            Assert.That(await store.ListAsync(""), Is.EqualTo(new[] { "a/Z", "a/a/1", "a/b", "b/2", "c" }));
            Assert.That(await neighbour.ListAsync(""), Is.EqualTo(new[] { "a/other" }));
        });
    }

    [Test]
    public async Task Delete_ExistingAndMissing_RemovesOneIgnoresOther()
    {
        var store = Open(NewContainer());
        await store.PutAsync("a", "x"u8.ToArray());
        await store.PutAsync("b", "x"u8.ToArray());
        await store.DeleteAsync("a");
        await store.DeleteAsync("never-there");
        Assert.That(await store.ListAsync(""), Is.EqualTo(new[] { "b" }));
    }

    [Test]
    public void Put_InvalidPath_ThrowsArgumentException()
    {
        var store = Open(NewContainer());
        Assert.ThrowsAsync<ArgumentException>(() => store.PutAsync("a/../b", "x"u8.ToArray()));
    }

    [Test]
    public async Task Put_20MegabyteBlob_GoesUpInBlocksAndReadsBackIdentical()
    {
        var container = NewContainer();
        var options = new AzureBlobStoreOptions { BlockSize = 4 << 20, SingleUploadLimit = 4 << 20, MaximumConcurrency = 4, Retry = Options().Retry };
        var store = Open(container, "big", options);
        var bytes = new byte[20 << 20];
        new Random(7).NextBytes(bytes);
        await store.PutAsync("model.safetensors", bytes, createOnly: true);

        // Read the block list straight from the service: a staged upload has 5 committed blocks of 4 MiB.
        var blob = new BlobContainerClient(SharedAzurite.Instance.ConnectionString, container).GetBlockBlobClient("big/model.safetensors");
        var blocks = (await blob.GetBlockListAsync(BlockListTypes.Committed)).Value.CommittedBlocks.ToList();
        var back = await store.GetAsync("model.safetensors");
        Assert.Multiple(async () =>
        {
            Assert.That(blocks, Has.Count.EqualTo(5));
            Assert.That(blocks.All(b => b.SizeLong == 4 << 20), Is.True);
            Assert.That(back, Is.EqualTo(bytes));
            Assert.That(await store.GetRangeAsync("model.safetensors", (19 << 20) + 5, 16), Is.EqualTo(bytes[((19 << 20) + 5)..((19 << 20) + 21)]));
        });
    }

    [Test]
    public async Task Put_StorageStartsListeningLate_RetriesThenSucceeds()
    {
        var port = AzuriteService.FreePort();
        var options = new AzureBlobStoreOptions
        {
            Retry = new StorageRetryOptions
            {
                MaxRetryAttempts = 12, BaseDelay = TimeSpan.FromMilliseconds(200), MaxDelay = TimeSpan.FromSeconds(1),
                AttemptTimeout = TimeSpan.FromSeconds(20), OnRetry = (_, e) => { lock (_retries) _retries.Add(e); },
            },
        };
        var store = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/late/p"),
            AzuriteService.EnvironmentFor(AzuriteService.ConnectionStringFor(port)), options);
        var put = store.PutAsync("checkpoint/model", "weights"u8.ToArray(), createOnly: true);
        await Task.Delay(1500);
        Assert.That(put.IsCompleted, Is.False, "nothing listens yet, so the write must still be retrying");
        using var late = AzuriteService.Start(port);
        await put;
        Assert.Multiple(async () =>
        {
            Assert.That(_retries, Is.Not.Empty);
            Assert.That(Encoding.UTF8.GetString((await store.GetAsync("checkpoint/model"))!), Is.EqualTo("weights"));
        });
    }

    [Test]
    public void Get_NothingListening_FailsAfterRetriesAsUnavailableWithoutTheKey()
    {
        var port = AzuriteService.FreePort();
        var store = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/down/p"),
            AzuriteService.EnvironmentFor(AzuriteService.ConnectionStringFor(port)), Options(retries: 2));
        var watch = Stopwatch.StartNew();
        var error = Assert.ThrowsAsync<BlobStoreException>(() => store.GetAsync("x"))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.Transient, Is.True);
            Assert.That(error.Status, Is.EqualTo(0));
            Assert.That(_retries, Has.Count.EqualTo(2));
            Assert.That(error.Message, Does.Contain("azure://devstoreaccount1/down/p").And.Contain("3 attempts"));
            Assert.That(error.ToString(), Does.Not.Contain(AzuriteService.AccountKey));
            Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)));
        });
    }

    [Test]
    public void Put_WrongAccountKey_RefusedWithoutRetryAndWithoutTheKey()
    {
        // A well-formed but wrong key: Azurite checks the shared-key signature and answers 403.
        var wrongKey = Convert.ToBase64String(Encoding.UTF8.GetBytes("this-is-not-the-key-SECRETVALUE-0123456789abcdef0123456789"));
        var store = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/{NewContainer()}/p"),
            AzuriteService.EnvironmentFor(AzuriteService.ConnectionStringFor(SharedAzurite.Instance.Port, wrongKey)), Options());
        var error = Assert.ThrowsAsync<BlobStoreException>(() => store.PutAsync("x", "y"u8.ToArray()))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.Status, Is.EqualTo(403));
            Assert.That(error.Transient, Is.False);
            Assert.That(_retries, Is.Empty, "a 403 is final");
            Assert.That(error.ToString(), Does.Not.Contain(wrongKey));
        });
    }

    [Test]
    public void Get_SasAgainstNothingListening_ErrorHidesTheSignature()
    {
        var port = AzuriteService.FreePort();
        const string signature = "SECRETSIGNATURE0123456789abcdef";
        var environment = (string name) => name switch
        {
            "TRAINING_STORAGE_DEVSTOREACCOUNT1_SAS" => $"sv=2024-08-04&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&sig={signature}",
            "TRAINING_STORAGE_DEVSTOREACCOUNT1_ENDPOINT" => $"http://127.0.0.1:{port}/{AzuriteService.Account}",
            _ => null,
        };
        var store = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/sas/p"), environment, Options(retries: 1));
        var error = Assert.ThrowsAsync<BlobStoreException>(() => store.GetAsync("x"))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.ToString(), Does.Not.Contain(signature));
            Assert.That(store.Location, Does.Not.Contain(signature));
            Assert.That(error.Message, Does.Contain("azure://devstoreaccount1/sas/p"));
        });
    }

    [Test]
    public async Task Get_ServerAcceptsButNeverAnswers_EachAttemptTimesOutAndIsRetried()
    {
        // A real socket that accepts connections and never replies: a hung storage front end.
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var held = new List<System.Net.Sockets.TcpClient>();
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            try { while (true) held.Add(await listener.AcceptTcpClientAsync(stop.Token)); }
            catch (OperationCanceledException) { }
        });
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var options = new AzureBlobStoreOptions
        {
            Retry = new StorageRetryOptions
            {
                MaxRetryAttempts = 2, BaseDelay = TimeSpan.FromMilliseconds(50), AttemptTimeout = TimeSpan.FromMilliseconds(700),
                OnRetry = (_, e) => { lock (_retries) _retries.Add(e); },
            },
        };
        var store = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/hung/p"),
            AzuriteService.EnvironmentFor(AzuriteService.ConnectionStringFor(port)), options);
        try
        {
            var error = Assert.ThrowsAsync<BlobStoreException>(() => store.GetAsync("x"))!;
            Assert.Multiple(() =>
            {
                Assert.That(error.Transient, Is.True);
                Assert.That(error.Message, Does.Contain("timed out").And.Contain("3 attempts"));
                Assert.That(_retries, Has.Count.EqualTo(2));
            });
        }
        finally
        {
            stop.Cancel();
            listener.Stop();
            await accepting;
            foreach (var client in held) client.Dispose();
        }
    }
}
