using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using MessagePack;
using MessagePack.Resolvers;

namespace Training.Shared.Messages;

/// <summary>
/// Akka serializer for the project's control messages: MessagePack, with the message's short type name as manifest.
/// Only types from an explicit list deserialize, so a peer cannot make this node construct arbitrary types.
/// </summary>
public sealed class MessagePackAkkaSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const string Name = "training-msgpack";
    public const int SerializerId = 7310;

    private static readonly MessagePackSerializerOptions Options =
        ContractlessStandardResolver.Options.WithSecurity(MessagePackSecurity.UntrustedData);

    /// <summary>Every type that may cross the wire: the cluster messages and the training events they wrap.</summary>
    public static readonly IReadOnlyDictionary<string, Type> KnownTypes = typeof(IClusterMessage).Assembly.GetTypes()
        .Where(t => !t.IsAbstract && (typeof(IClusterMessage).IsAssignableFrom(t) || typeof(TrainingEvent).IsAssignableFrom(t)))
        .ToDictionary(t => t.Name);

    /// <summary>The types Akka routes to this serializer.</summary>
    public static readonly IReadOnlyList<Type> BoundTypes = [typeof(IClusterMessage), typeof(TrainingEvent)];

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => o.GetType().Name;

    public override byte[] ToBinary(object obj) => Pack(obj).Payload;

    public override object FromBinary(byte[] bytes, string manifest) => Unpack(manifest, bytes);

    public static (string Manifest, byte[] Payload) Pack(object message)
    {
        var type = message.GetType();
        if (!KnownTypes.TryGetValue(type.Name, out var known) || known != type)
            throw new SerializationException($"{type.FullName} is not a known cluster message");
        return (type.Name, MessagePackSerializer.Serialize(type, message, Options));
    }

    public static object Unpack(string manifest, byte[] payload)
    {
        if (!KnownTypes.TryGetValue(manifest, out var type))
            throw new SerializationException($"unknown cluster message type '{manifest}'");
        return MessagePackSerializer.Deserialize(type, payload, Options)
               ?? throw new SerializationException($"empty payload for '{manifest}'");
    }
}
