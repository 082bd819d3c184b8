using NUnit.Framework;
using Training.Shared.Storage;
using static TorchSharp.torch;

namespace Training.Tests.Storage;

public class SafeTensorsTests
{
    [Test]
    public void Serialize_ThenDeserialize_GivesEqualTensorsOfEveryDtype()
    {
        using var scope = NewDisposeScope();
        var originals = new Dictionary<string, Tensor>
        {
            ["weight"] = randn(3, 5),
            ["ids"] = arange(7, dtype: ScalarType.Int64),
            ["half"] = randn(4, 2).to(ScalarType.BFloat16),
            ["scalar"] = tensor(3.5),
        };
        var bytes = SafeTensors.Serialize(originals.Select(kv => HostTensor.From(kv.Key, kv.Value)).ToList(),
            new Dictionary<string, string> { ["step"] = "12" });
        var (tensors, metadata) = SafeTensors.Deserialize(bytes, "test.safetensors");

        Assert.That(metadata["step"], Is.EqualTo("12"));
        Assert.That(tensors.Select(t => t.Name), Is.EquivalentTo(originals.Keys));
        foreach (var saved in tensors)
        {
            var restored = saved.ToTensor(CPU);
            var original = originals[saved.Name];
            Assert.That(restored.dtype, Is.EqualTo(original.dtype), saved.Name);
            Assert.That(restored.shape, Is.EqualTo(original.shape), saved.Name);
            Assert.That(restored.eq(original).all().item<bool>(), Is.True, saved.Name);
        }
        Assert.That((8 + BitConverter.ToInt64(bytes, 0)) % 8, Is.EqualTo(0), "data starts 8-byte aligned");
    }

    [Test]
    public void Deserialize_TruncatedFile_ThrowsNamingTheSource()
    {
        using var scope = NewDisposeScope();
        var bytes = SafeTensors.Serialize([HostTensor.From("w", ones(10))]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Deserialize(bytes[..^8], "ckpt/model.safetensors"));
        Assert.That(e!.Message, Does.StartWith("ckpt/model.safetensors").And.Contain("'w'"));
    }
}
