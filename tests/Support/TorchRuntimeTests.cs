using NUnit.Framework;
using TorchSharp;

namespace Training.Tests.Support;

public class TorchRuntimeTests
{
    [Test]
    public void NativeRuntime_Loads_AndComputes()
    {
        using var scope = torch.NewDisposeScope();
        var sum = torch.ones(2, 3).sum().item<float>();
        Assert.That(sum, Is.EqualTo(6f));
    }
}
