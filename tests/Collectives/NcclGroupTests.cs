using System.Runtime.InteropServices;
using NUnit.Framework;
using Training.Shared.Collectives;

namespace Training.Tests.Collectives;

/// <summary>
/// The CPU machines that run this suite have no GPU and no NCCL: these tests pin down that a missing or wrong
/// library gives a clear <see cref="CollectiveUnavailableException"/> rather than a DllNotFoundException or a crash.
/// Where NCCL and a GPU exist, the default-library tests run a real one-rank communicator instead.
/// </summary>
public class NcclGroupTests
{
    [Test]
    public void Load_LibrariesMissing_ThrowsUnavailableNamingEveryNameTriedAndWhatToInstall()
    {
        var error = Assert.Throws<CollectiveUnavailableException>(() =>
            NcclRuntime.Load(["libnccl-missing-for-test.so.2"], ["libcudart-missing-for-test.so.12", "libcudart-missing-for-test.so"]));

        Assert.That(error!.Message, Does.Contain("libnccl-missing-for-test.so.2")
            .And.Contain("libcudart-missing-for-test.so.12").And.Contain("libcudart-missing-for-test.so;")
            .And.Contain("nvidia-nccl").And.Contain("--device cpu"));
    }

    [Test]
    public void Load_LibraryThatIsNotNccl_ThrowsUnavailableNamingTheMissingEntryPoints()
    {
        // libc loads fine but exports none of NCCL's or CUDA's functions.
        var error = Assert.Throws<CollectiveUnavailableException>(() => NcclRuntime.Load(["libc.so.6"], ["libc.so.6"]));
        TestContext.Out.WriteLine(error!.Message);

        Assert.That(error!.Message, Does.Contain("libc.so.6 does not export ncclCommInitRankConfig")
            .And.Contain("libc.so.6 does not export cudaStreamQuery").And.Contain("2.14"));
    }

    [Test]
    public void CreateUniqueIdAndCreate_DefaultLibraries_WorkOrSayWhatToInstall()
    {
        try
        {
            var id = NcclGroup.CreateUniqueId();
            Assert.That(id, Has.Length.EqualTo(128));
            using var group = NcclGroup.Create(0, 1, id, 0, TimeSpan.FromSeconds(30));
            var buffer = MemoryMarshal.AsBytes(new[] { 1f, 2f, 3f }.AsSpan()).ToArray();
            group.AllReduceSum(buffer, ElementType.Float32);
            Assert.That(MemoryMarshal.Cast<byte, float>(buffer).ToArray(), Is.EqualTo(new[] { 1f, 2f, 3f }));
        }
        catch (CollectiveUnavailableException e)
        {
            TestContext.Out.WriteLine(e.Message);
            Assert.That(e.Message, Does.Contain("libnccl.so.2").Or.Contain("CUDA device"));
            Assert.That(e.Message, Does.Contain("--device cpu").Or.Contain("device(s)"));
            var again = Assert.Throws<CollectiveUnavailableException>(() => NcclGroup.Create(1, 2, new byte[128], 0, TimeSpan.FromSeconds(1)));
            Assert.That(again!.Message, Is.EqualTo(e.Message).Or.Contain("CUDA"));
        }
    }

    [Test]
    public void Create_BadArguments_ThrowsBeforeTouchingNccl()
    {
        var runtime = (NcclRuntime?)null;
        Assert.That(Assert.Throws<ArgumentException>(() => NcclGroup.Create(0, 2, new byte[127], 0, TimeSpan.FromSeconds(1), runtime))!.Message,
            Does.Contain("128 bytes").And.Contain("127"));
        Assert.Throws<ArgumentOutOfRangeException>(() => NcclGroup.Create(2, 2, new byte[128], 0, TimeSpan.FromSeconds(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => NcclGroup.Create(0, 2, new byte[128], -1, TimeSpan.FromSeconds(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => NcclGroup.Create(0, 2, new byte[128], 0, TimeSpan.Zero));
    }

    [TestCase("cpu", CollectiveBackendKind.TcpRing, null)]
    [TestCase(" CPU ", CollectiveBackendKind.TcpRing, null)]
    [TestCase("cuda", CollectiveBackendKind.Nccl, 0)]
    [TestCase("cuda:0", CollectiveBackendKind.Nccl, 0)]
    [TestCase("cuda:3", CollectiveBackendKind.Nccl, 3)]
    public void For_KnownDevices_PicksTheBackendAndDevice(string device, CollectiveBackendKind kind, int? cudaDevice)
    {
        Assert.That(CollectiveBackends.For(device), Is.EqualTo(new CollectiveBackend(kind, cudaDevice)));
    }

    [TestCase("mps")]
    [TestCase("cuda:")]
    [TestCase("cuda:-1")]
    [TestCase("cuda:x")]
    [TestCase("")]
    public void For_UnknownDevice_ThrowsNamingItAndTheChoices(string device)
    {
        var error = Assert.Throws<ArgumentException>(() => CollectiveBackends.For(device));
        Assert.That(error!.Message, Does.Contain($"'{device}'").And.Contain("'cpu'").And.Contain("'cuda:N'"));
    }
}
