using System.Security.Cryptography;
using System.Text;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Training.Shared.Messages;

namespace Training.Shared.Cluster;

/// <summary>How one node joins the training cluster.</summary>
/// <param name="Host">Address this node binds and advertises (127.0.0.1 for a local cluster).</param>
/// <param name="Port">Akka.Remote port; 0 picks a free one.</param>
/// <param name="Secret">Shared by every node of a cluster; a node with another secret cannot join.</param>
/// <param name="Role">coordinator | trainer | teacher.</param>
/// <param name="Seed">HOST:PORT of the seed node to join; null for the seed itself (it joins itself).</param>
/// <param name="SerializeAllMessages">Serialize even local messages (tests), so in-process tests exercise the serializer.</param>
/// <param name="Tls">Mutual TLS for every cluster connection; null for plain TCP (loopback, trusted networks).</param>
public sealed record ClusterNodeSettings(string Host, int Port, string Secret, string Role, string? Seed, bool SerializeAllMessages = false,
    ClusterTls? Tls = null);

/// <summary>Failure detection tolerant of long native calls and GC pauses, in seconds.</summary>
public sealed record FailureDetectorSettings(int AcceptableHeartbeatPauseSeconds = 15, int StableAfterSeconds = 5);

public static class ClusterHosting
{
    public const string CoordinatorRole = "coordinator";
    public const string TrainerRole = "trainer";
    public const string TeacherRole = "teacher";
    public const string ManagerName = "experiment-manager";
    public const string SecretVariable = "TRAINING_CLUSTER_SECRET";

    /// <summary>
    /// The actor system's name is derived from the secret. Akka.Remote drops messages addressed to another system
    /// name, so a node with the wrong secret never completes its join. (This keeps stray or misconfigured nodes out;
    /// enable Akka.Remote TLS where the network itself is untrusted.)
    /// </summary>
    public static string SystemName(string secret)
    {
        if (string.IsNullOrEmpty(secret)) throw new ArgumentException("the cluster secret must not be empty");
        return "training-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)))[..16];
    }

    /// <summary>The seed's Akka address; a TLS cluster's addresses use the akka.ssl.tcp scheme.</summary>
    public static string SeedAddress(string secret, string seed, bool tls = false)
    {
        var (host, port) = ParseHostPort(seed, "seed");
        return $"{(tls ? "akka.ssl.tcp" : "akka.tcp")}://{SystemName(secret)}@{host}:{port}";
    }

    public static (string Host, int Port) ParseHostPort(string value, string what)
    {
        var colon = value.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(value[(colon + 1)..], out var port) || port is <= 0 or > 65535)
            throw new ArgumentException($"{what} must be HOST:PORT, got '{value}'");
        return (value[..colon], port);
    }

    public static AkkaConfigurationBuilder WithTrainingCluster(this AkkaConfigurationBuilder builder, ClusterNodeSettings node,
        FailureDetectorSettings? failureDetector = null)
    {
        var fd = failureDetector ?? new FailureDetectorSettings();
        builder
            .AddHocon($$"""
                akka.loglevel = WARNING
                akka.stdout-loglevel = WARNING
                akka.actor.serialize-messages = {{(node.SerializeAllMessages ? "on" : "off")}}
                akka.cluster.log-info = off
                # Workers retry registration until the coordinator answers; the proxy need not warn meanwhile.
                akka.cluster.singleton-proxy.log-singleton-identification-failure = off
                akka.cluster.failure-detector.acceptable-heartbeat-pause = {{fd.AcceptableHeartbeatPauseSeconds}}s
                akka.remote.watch-failure-detector.acceptable-heartbeat-pause = {{fd.AcceptableHeartbeatPauseSeconds}}s
                akka.cluster.split-brain-resolver.stable-after = {{fd.StableAfterSeconds}}s
                # .NET's ReuseAddress also sets SO_REUSEPORT on Linux: two nodes could then share one port.
                akka.remote.dot-netty.tcp.tcp-reuse-addr = off
                akka.coordinated-shutdown.exit-clr = off
                akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
                """, HoconAddMode.Prepend)
            .WithRemoting(new RemoteOptions { HostName = node.Host, PublicHostName = node.Host, Port = node.Port, EnableSsl = node.Tls is not null })
            .WithClustering(new ClusterOptions
            {
                Roles = [node.Role],
                SeedNodes = node.Seed is null ? [] : [SeedAddress(node.Secret, node.Seed, node.Tls is not null)],
                // The coordinator is a singleton on the oldest coordinator node: keep-oldest keeps the side that has it, and
                // it stays up even when every worker is gone (down-if-alone off).
                SplitBrainResolver = new KeepOldestOption { DownIfAlone = false, Role = CoordinatorRole },
            })
            .WithCustomSerializer(MessagePackAkkaSerializer.Name, MessagePackAkkaSerializer.BoundTypes,
                system => new MessagePackAkkaSerializer(system));
        if (node.Tls is not null) builder.AddSetup(node.Tls.Setup());
        return builder;
    }
}

/// <summary>Registry key of the experiment manager (the coordinator singleton) and of its proxy.</summary>
public sealed class ExperimentManagerKey;
