using System.Net;
using System.Net.Sockets;

namespace Training.Shared.Collectives;

/// <summary>
/// The socket on which a rank accepts its ring predecessor. A rank starts one first, reports <see cref="Endpoint"/>
/// to the coordinator, and passes the listener to <see cref="TcpRing.Connect"/> once the coordinator has handed out
/// every rank's endpoint. Groups formed through it do not depend on it afterwards; it may be reused for the next
/// generation (connections carrying another group's token are refused).
/// </summary>
public sealed class RingListener : IDisposable
{
    private RingListener(Socket socket, RingEndpoint endpoint)
    {
        Socket = socket;
        Endpoint = endpoint;
    }

    public RingEndpoint Endpoint { get; }

    internal Socket Socket { get; }

    /// <summary>
    /// Binds <paramref name="host"/> on a free port. Binding all interfaces ("0.0.0.0") advertises
    /// <paramref name="advertisedHost"/> (default: this machine's host name) instead, since peers cannot dial 0.0.0.0.
    /// </summary>
    public static RingListener Start(string host = "127.0.0.1", string? advertisedHost = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        var address = IPAddress.TryParse(host, out var parsed)
            ? parsed
            : Dns.GetHostAddresses(host).FirstOrDefault(a => a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
              ?? throw new ArgumentException($"ring listener host '{host}' does not resolve to an IP address", nameof(host));
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(address, 0));
            socket.Listen(64);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        var advertised = advertisedHost ?? (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ? Dns.GetHostName() : host);
        return new RingListener(socket, new RingEndpoint(advertised, port));
    }

    public void Dispose() => Socket.Dispose();
}
