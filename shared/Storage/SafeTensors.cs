using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Training.Shared.Storage;

/// <summary>A tensor copied to host memory: what a checkpoint holds while it is written in the background.</summary>
public sealed record HostTensor(string Name, ScalarType DType, long[] Shape, byte[] Data)
{
    /// <summary>Copies a tensor (any device) to host memory. This is the only part of a checkpoint that blocks training.</summary>
    public static HostTensor From(string name, Tensor tensor)
    {
        using var host = tensor.detach().cpu().contiguous();
        return new HostTensor(name, host.dtype, host.shape, host.bytes.ToArray());
    }

    /// <summary>A new tensor on <paramref name="device"/> with this content.</summary>
    public Tensor ToTensor(Device device)
    {
        var result = empty(Shape, DType, CPU);
        result.bytes = Data;
        return device.type == DeviceType.CPU ? result : result.to(device);
    }
}

/// <summary>
/// The safetensors file format (8-byte little-endian header length, JSON header, raw little-endian data):
/// readable by the Python ecosystem, and simple enough to verify by hand.
/// </summary>
public static class SafeTensors
{
    private static readonly Dictionary<ScalarType, string> Names = new()
    {
        [ScalarType.Float32] = "F32", [ScalarType.Float64] = "F64", [ScalarType.BFloat16] = "BF16",
        [ScalarType.Float16] = "F16", [ScalarType.Int64] = "I64", [ScalarType.Int32] = "I32",
        [ScalarType.Int8] = "I8", [ScalarType.Byte] = "U8", [ScalarType.Bool] = "BOOL",
    };

    private static readonly Dictionary<string, ScalarType> Types = Names.ToDictionary(kv => kv.Value, kv => kv.Key);

    public static byte[] Serialize(IReadOnlyList<HostTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var t in tensors)
        {
            if (!Names.TryGetValue(t.DType, out var dtype))
                throw new NotSupportedException($"tensor '{t.Name}' has dtype {t.DType}, which safetensors files here do not store");
            header[t.Name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Data.Length),
            };
            offset += t.Data.Length;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        // Pad the header with spaces so the data starts 8-byte aligned, as the format recommends.
        var padded = (headerBytes.Length + 7) / 8 * 8;
        var result = new byte[8 + padded + offset];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)padded);
        headerBytes.CopyTo(result, 8);
        result.AsSpan(8 + headerBytes.Length, padded - headerBytes.Length).Fill((byte)' ');
        var position = 8 + padded;
        foreach (var t in tensors)
        {
            t.Data.CopyTo(result, position);
            position += t.Data.Length;
        }
        return result;
    }

    /// <summary>Parses a safetensors file; <paramref name="source"/> names it in errors.</summary>
    public static (IReadOnlyList<HostTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Deserialize(byte[] bytes, string source)
    {
        if (bytes.Length < 8) throw new InvalidDataException($"{source}: too short for a safetensors file ({bytes.Length} bytes)");
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > (ulong)(bytes.Length - 8)) throw new InvalidDataException($"{source}: header length {headerLength} exceeds the file");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength))!.AsObject();
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: header is not valid JSON: {e.Message}", e);
        }
        var dataStart = 8 + (long)headerLength;
        var tensors = new List<HostTensor>();
        var metadata = new Dictionary<string, string>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                foreach (var (k, v) in node!.AsObject()) metadata[k] = v!.GetValue<string>();
                continue;
            }
            var entry = node!.AsObject();
            var dtypeName = entry["dtype"]!.GetValue<string>();
            if (!Types.TryGetValue(dtypeName, out var dtype))
                throw new InvalidDataException($"{source}: tensor '{name}' has unsupported dtype {dtypeName}");
            var shape = entry["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            var offsets = entry["data_offsets"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || dataStart + offsets[1] > bytes.Length)
                throw new InvalidDataException($"{source}: tensor '{name}' has data offsets outside the file");
            var data = bytes.AsSpan((int)(dataStart + offsets[0]), (int)(offsets[1] - offsets[0])).ToArray();
            tensors.Add(new HostTensor(name, dtype, shape, data));
        }
        return (tensors, metadata);
    }
}
