using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace Training.Shared.Collectives;

/// <summary>
/// The first bytes on a ring connection. The connecting rank sends a hello
/// (magic "TRNG", protocol version, sender rank, world size, group token); the accepting rank answers with one
/// status byte (1 accepted, 0 refused) and a reason, so a stale or foreign rank learns at once why it was refused.
/// All integers little-endian int32; strings UTF-8, length-prefixed, at most <see cref="MaxStringBytes"/> bytes.
/// </summary>
internal static class RingHandshake
{
    public const uint Magic = 0x474E5254; // "TRNG" read as a little-endian uint32
    public const int ProtocolVersion = 1;
    public const int MaxStringBytes = 1024;

    public sealed record Hello(uint Magic, int Version, int SenderRank, int WorldSize, string GroupToken);

    public static async Task SendHelloAsync(Socket socket, int senderRank, int worldSize, string groupToken, CancellationToken cancel)
    {
        var token = Encoding.UTF8.GetBytes(groupToken);
        var message = new byte[20 + token.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(0), Magic);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(4), ProtocolVersion);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(8), senderRank);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(12), worldSize);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(16), token.Length);
        token.CopyTo(message, 20);
        await SendAllAsync(socket, message, cancel);
    }

    /// <summary>Reads a hello; throws <see cref="InvalidDataException"/> for bytes that are not one.</summary>
    public static async Task<Hello> ReadHelloAsync(Socket socket, CancellationToken cancel)
    {
        var header = new byte[20];
        await ReadExactlyAsync(socket, header, cancel);
        var magic = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(0));
        if (magic != Magic) throw new InvalidDataException($"not a ring handshake (first bytes 0x{magic:X8})");
        var tokenLength = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(16));
        if (tokenLength is < 0 or > MaxStringBytes) throw new InvalidDataException($"group token length {tokenLength} is outside 0..{MaxStringBytes}");
        var token = new byte[tokenLength];
        await ReadExactlyAsync(socket, token, cancel);
        return new Hello(magic,
            BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4)),
            BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8)),
            BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12)),
            Encoding.UTF8.GetString(token));
    }

    public static async Task SendReplyAsync(Socket socket, bool accepted, string reason, CancellationToken cancel)
    {
        var text = Encoding.UTF8.GetBytes(reason);
        if (text.Length > MaxStringBytes) text = text[..MaxStringBytes];
        var message = new byte[5 + text.Length];
        message[0] = accepted ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(1), text.Length);
        text.CopyTo(message, 5);
        await SendAllAsync(socket, message, cancel);
    }

    /// <summary>The acceptor's answer, or null when it closed the connection without one.</summary>
    public static async Task<(bool Accepted, string Reason)?> ReadReplyAsync(Socket socket, CancellationToken cancel)
    {
        var header = new byte[5];
        try
        {
            await ReadExactlyAsync(socket, header, cancel);
        }
        catch (EndOfStreamException)
        {
            return null;
        }
        var length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(1));
        if (length is < 0 or > MaxStringBytes) throw new InvalidDataException($"handshake reply reason length {length} is outside 0..{MaxStringBytes}");
        var reason = new byte[length];
        await ReadExactlyAsync(socket, reason, cancel);
        return (header[0] == 1, Encoding.UTF8.GetString(reason));
    }

    private static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancel)
    {
        while (!data.IsEmpty)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None, cancel);
            data = data[sent..];
        }
    }

    private static async Task ReadExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancel)
    {
        while (!buffer.IsEmpty)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel);
            if (read == 0) throw new EndOfStreamException("the connection closed during the ring handshake");
            buffer = buffer[read..];
        }
    }
}
