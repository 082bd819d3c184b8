using System.Diagnostics;
using System.Text.RegularExpressions;
using NUnit.Framework;
using Training.Tests.Support;
using YamlDotNet.RepresentationModel;

namespace Training.Tests.Containers;

/// <summary>
/// infra/k8s/*.yaml and infra/compose.yaml parsed and checked against the programs themselves: every variable a
/// container is given is a setting its program reads (from its own --help), ports and addresses line up between the
/// orchestrator, its Service and the workers' seed, referenced secret keys exist, and images are ones `make images` builds.
/// </summary>
public partial class DeploymentManifestTests
{
    private static readonly string Root = RunEvents.RepositoryRoot();

    private static readonly string[] Shared =
    [
        "TRAINING_CLUSTER_SECRET", "TRAINING_TLS_CERT", "TRAINING_TLS_KEY", "TRAINING_TLS_CA",
    ];

    [Test]
    public void Kubernetes_EveryVariablePortAndNameLinesUpWithThePrograms()
    {
        var documents = Directory.GetFiles(Path.Combine(Root, "infra", "k8s"), "*.yaml").SelectMany(Load).ToList();
        YamlMappingNode Kind(string kind, string name) => documents.Single(d => Text(d, "kind") == kind && Text(d, "metadata", "name") == name);
        var statefulSet = Kind("StatefulSet", "orchestrator");
        var service = Kind("Service", "orchestrator");
        var workers = Kind("Deployment", "worker");
        var secret = Kind("Secret", "training-secrets");
        var orchestrator = Containers(statefulSet).Single();
        var worker = Containers(workers).Single();

        Assert.Multiple(() =>
        {
            Assert.That(UnknownVariables(orchestrator, OrchestratorSettings()), Is.Empty, "orchestrator variables serve does not read");
            Assert.That(UnknownVariables(worker, WorkerSettings()), Is.Empty, "worker variables the worker does not read");

            var env = Environment(orchestrator);
            var ports = ContainerPorts(orchestrator);
            Assert.That(ports["cluster"], Is.EqualTo(int.Parse(env["ORCHESTRATOR_PORT"])));
            Assert.That(ports["http"], Is.EqualTo(int.Parse(env["ORCHESTRATOR_HTTP_PORT"])));
            foreach (var port in Sequence(service, "spec", "ports").Cast<YamlMappingNode>())
                Assert.That(ports.ContainsKey(Text(port, "targetPort")!), $"Service port {Text(port, "name")} targets a named container port");
            var podName = $"{Text(statefulSet, "metadata", "name")}-0.{Text(statefulSet, "spec", "serviceName")}.{Text(statefulSet, "metadata", "namespace")}.svc.cluster.local";
            Assert.That(Text(statefulSet, "spec", "serviceName"), Is.EqualTo(Text(service, "metadata", "name")));
            Assert.That(Text(service, "spec", "clusterIP"), Is.EqualTo("None"), "a headless Service gives the pod its stable name");
            Assert.That(env["ORCHESTRATOR_HOST"], Is.EqualTo(podName), "the seed advertises the name workers dial");
            Assert.That(Environment(worker)["WORKER_SEED"], Is.EqualTo($"{podName}:{env["ORCHESTRATOR_PORT"]}"));
            Assert.That(ContainerPorts(worker)["cluster"], Is.EqualTo(int.Parse(Environment(worker)["WORKER_PORT"])));

            var keys = ((YamlMappingNode)secret["stringData"]).Children.Keys.Select(k => k.ToString()).ToHashSet();
            foreach (var reference in SecretKeyReferences(worker).Concat(SecretKeyReferences(orchestrator)))
                Assert.That(keys, Does.Contain(reference), $"secretKeyRef {reference} is in the example Secret");
            Assert.That(SecretKeyReferences(worker), Does.Not.Contain("ORCHESTRATOR_API_TOKEN"), "workers do not get the API token");
            Assert.That(keys.Where(k => k.StartsWith("ORCHESTRATOR_", StringComparison.Ordinal) || k.StartsWith("TRAINING_", StringComparison.Ordinal)),
                Is.EquivalentTo(keys), "every Secret key is a variable the programs read");
            Assert.That(Text(orchestrator, "image"), Is.EqualTo(BuiltImage("orchestrator")));
            Assert.That(Text(worker, "image"), Is.EqualTo(BuiltImage("worker")));
            Assert.That(int.Parse(Text(workers, "spec", "template", "spec", "terminationGracePeriodSeconds")!),
                Is.GreaterThan(int.Parse(Environment(worker)["WORKER_DRAIN_TIMEOUT"])), "the grace period covers the drain");
        });
    }

    [Test]
    public void Compose_EveryVariableAndPortLinesUpWithThePrograms()
    {
        var compose = Load(Path.Combine(Root, "infra", "compose.yaml")).Single();
        var services = (YamlMappingNode)compose["services"];
        var orchestrator = (YamlMappingNode)services["orchestrator"];
        var worker = (YamlMappingNode)services["worker"];
        Dictionary<string, string> Env(YamlMappingNode s) => ((YamlMappingNode)s["environment"]).Children
            .Where(kv => kv.Key.ToString() != "<<").ToDictionary(kv => kv.Key.ToString(), kv => kv.Value.ToString());

        Assert.Multiple(() =>
        {
            Assert.That(Env(orchestrator).Keys.Where(k => !Known(k, OrchestratorSettings())), Is.Empty);
            Assert.That(Env(worker).Keys.Where(k => !Known(k, WorkerSettings())), Is.Empty);
            Assert.That(Env(worker)["WORKER_SEED"], Is.EqualTo($"127.0.0.1:{Env(orchestrator)["ORCHESTRATOR_PORT"]}"));
            foreach (var (name, service) in services.Children.Select(kv => (kv.Key.ToString(), (YamlMappingNode)kv.Value)))
            {
                Assert.That(Text(service, "image"), Is.EqualTo(BuiltImage(name)), $"{name} runs an image make images builds");
                Assert.That(Text(service, "network_mode"), Is.EqualTo("host"), $"{name} on host networking");
            }
        });
    }

    /// <summary>localhost/training-TARGET:dev, where TARGET is a stage of the Containerfile (what build-images.sh tags).</summary>
    private static string BuiltImage(string target)
    {
        var containerfile = File.ReadAllText(Path.Combine(Root, "infra", "containers", "Containerfile"));
        Assert.That(containerfile, Does.Match($@"(?m)^FROM \S+ AS {target}$"), $"the Containerfile has a {target} target");
        Assert.That(File.ReadAllText(Path.Combine(Root, "infra", "containers", "build-images.sh")), Does.Contain("localhost/training-$target:$tag"));
        return $"localhost/training-{target}:dev";
    }

    private static IEnumerable<string> UnknownVariables(YamlMappingNode container, IReadOnlySet<string> settings) =>
        Environment(container).Keys.Where(k => !Known(k, settings));

    private static bool Known(string variable, IReadOnlySet<string> settings) =>
        settings.Contains(variable) || Shared.Contains(variable) || StorageCredential().IsMatch(variable);

    [GeneratedRegex(@"^TRAINING_STORAGE_[A-Z0-9_]+_(CONNECTION_STRING|SAS|ENDPOINT)(_FILE)?$")]
    private static partial Regex StorageCredential();

    /// <summary>WORKER_ + every option of `worker --help`.</summary>
    private static IReadOnlySet<string> WorkerSettings() => Options(Help("worker.dll", "--help"), "WORKER_");

    /// <summary>ORCHESTRATOR_ + every option of `orchestrator serve --help`, and the API token variable.</summary>
    private static IReadOnlySet<string> OrchestratorSettings()
    {
        var serve = Help("orchestrator.dll", "serve", "--help");
        Assert.That(serve, Does.Contain("--http-port"), "found serve's options");
        var settings = new HashSet<string>(Options(serve, "ORCHESTRATOR_")) { "ORCHESTRATOR_API_TOKEN" };
        return settings;
    }

    /// <summary>The options a --help lists (the first name on each of its option lines).</summary>
    private static HashSet<string> Options(string usage, string prefix) =>
        Regex.Matches(usage, @"(?m)^\s+(?:-\S+, )*--([a-z][a-z-]+)").Select(m => prefix + m.Groups[1].Value.ToUpperInvariant().Replace('-', '_')).ToHashSet();

    private static string Help(string program, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Path.Combine(TestContext.CurrentContext.TestDirectory, program));
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return output;
    }

    private static IEnumerable<YamlMappingNode> Load(string file)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(file);
        stream.Load(reader);
        return stream.Documents.Select(d => (YamlMappingNode)d.RootNode);
    }

    private static IEnumerable<YamlMappingNode> Containers(YamlMappingNode workload) =>
        Sequence(workload, "spec", "template", "spec", "containers").Cast<YamlMappingNode>();

    private static Dictionary<string, string> Environment(YamlMappingNode container) =>
        Sequence(container, "env").Cast<YamlMappingNode>().ToDictionary(e => Text(e, "name")!, e => Text(e, "value") ?? "");

    private static IEnumerable<string> SecretKeyReferences(YamlMappingNode container) =>
        Sequence(container, "env").Cast<YamlMappingNode>().Select(e => Text(e, "valueFrom", "secretKeyRef", "key")).OfType<string>();

    private static Dictionary<string, int> ContainerPorts(YamlMappingNode container) =>
        Sequence(container, "ports").Cast<YamlMappingNode>().ToDictionary(p => Text(p, "name")!, p => int.Parse(Text(p, "containerPort")!));

    private static YamlSequenceNode Sequence(YamlMappingNode node, params string[] path) =>
        (YamlSequenceNode)path.Aggregate((YamlNode)node, (n, key) => ((YamlMappingNode)n)[key]);

    private static string? Text(YamlMappingNode node, params string[] path)
    {
        YamlNode current = node;
        foreach (var key in path)
        {
            if (current is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next)) return null;
            current = next;
        }
        return (current as YamlScalarNode)?.Value;
    }
}
