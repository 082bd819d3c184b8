using NUnit.Framework;
using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Training.Shared.Spec;

namespace Training.Tests.Architecture;

/// <summary>
/// The layering the code relies on: product projects compile against libraries only, and the folders of shared/
/// (one namespace each) depend on each other without cycles, so a setting's rules live below whatever uses them.
/// </summary>
public sealed partial class DependencyTests
{
    private static readonly string Repo = FindRepo();

    [Test]
    public void ProductProjects_ReferenceNoExecutableForItsCode()
    {
        var offenders = new List<string>();
        foreach (var project in Directory.EnumerateFiles(Repo, "*.csproj", SearchOption.AllDirectories)
                     .Where(p => !Relative(p).StartsWith("tests/", StringComparison.Ordinal) && !Relative(p).Contains("/obj/")))
        {
            foreach (var reference in XDocument.Load(project).Descendants("ProjectReference"))
            {
                var target = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(project)!, reference.Attribute("Include")!.Value));
                var isExecutable = XDocument.Load(target).Descendants("OutputType").Any(o => o.Value == "Exe");
                var buildOnly = string.Equals(reference.Attribute("ReferenceOutputAssembly")?.Value, "false", StringComparison.OrdinalIgnoreCase);
                if (isExecutable && !buildOnly) offenders.Add($"{Relative(project)} -> {Relative(target)}");
            }
        }
        Assert.That(offenders, Is.Empty, "a product project compiles against an executable; move the code it needs into a library");
    }

    [Test]
    public void SharedFolders_HaveNoDependencyCycle()
    {
        var graph = SharedFolderDependencies();
        var cycle = FindCycle(graph);

        Assert.That(graph.Keys, Does.Contain("Spec").And.Contain("Models").And.Contain("Training"), "the scan found the folders");
        Assert.That(graph["Training"], Does.Contain("Spec"), "the scan sees dependencies");
        Assert.That(cycle, Is.Null, $"shared/ folders depend on each other in a cycle: {(cycle is null ? "" : string.Join(" -> ", cycle))}");
    }

    [Test]
    public void SpecModelsObjectivesData_StayBelowTheTrainingLayer()
    {
        var graph = SharedFolderDependencies();

        foreach (var lower in new[] { "Spec", "Models", "Objectives", "Data" })
            Assert.That(graph[lower], Does.Not.Contain("Training"), $"{lower} must not depend on Training (it builds from them)");
        foreach (var domain in new[] { "Models", "Objectives", "Data" })
            Assert.That(graph[domain], Does.Not.Contain("Spec"), $"{domain} must not depend on Spec (the spec holds their records)");
    }

    /// <summary>Folder -> folders it uses: from using directives and qualified names in its sources, and from the
    /// types in its public and private signatures (fields, properties, parameters, returns, base types).</summary>
    private static Dictionary<string, HashSet<string>> SharedFolderDependencies()
    {
        var shared = Path.Combine(Repo, "shared");
        var folders = Directory.EnumerateDirectories(shared).Select(Path.GetFileName).OfType<string>()
            .Where(f => f is not ("bin" or "obj") && Directory.EnumerateFiles(Path.Combine(shared, f), "*.cs").Any()).ToList();
        var graph = folders.ToDictionary(f => f, _ => new HashSet<string>());

        foreach (var folder in folders)
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(shared, folder), "*.cs", SearchOption.AllDirectories))
            {
                var text = File.ReadAllText(file);
                foreach (Match m in QualifiedUse().Matches(text))
                {
                    var used = m.Groups[1].Value;
                    if (used != folder && graph.ContainsKey(used)) graph[folder].Add(used);
                }
            }
        }

        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in typeof(ExperimentSpec).Assembly.GetTypes())
        {
            if (FolderOf(type) is not { } from || !graph.ContainsKey(from)) continue;
            var used = new List<Type?> { type.BaseType };
            used.AddRange(type.GetInterfaces());
            used.AddRange(type.GetFields(all).Select(f => f.FieldType));
            used.AddRange(type.GetProperties(all).Select(p => p.PropertyType));
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                if (method is MethodInfo info) used.Add(info.ReturnType);
                used.AddRange(method.GetParameters().Select(p => p.ParameterType));
            }
            foreach (var target in used.OfType<Type>().SelectMany(Unwrap).Select(FolderOf).OfType<string>())
                if (target != from && graph.ContainsKey(target)) graph[from].Add(target);
        }
        return graph;
    }

    private static IEnumerable<Type> Unwrap(Type type)
    {
        yield return type;
        if (type.HasElementType && type.GetElementType() is { } element)
            foreach (var inner in Unwrap(element)) yield return inner;
        if (type.IsGenericType)
            foreach (var argument in type.GetGenericArguments().SelectMany(Unwrap)) yield return argument;
    }

    private static string? FolderOf(Type type)
    {
        var ns = type.Namespace ?? "";
        const string prefix = "Training.Shared.";
        if (!ns.StartsWith(prefix, StringComparison.Ordinal)) return null;
        var rest = ns[prefix.Length..];
        return rest.Contains('.') ? rest[..rest.IndexOf('.')] : rest;
    }

    private static List<string>? FindCycle(Dictionary<string, HashSet<string>> graph)
    {
        var state = new Dictionary<string, int>(); // 1 on the current path, 2 done
        var path = new List<string>();
        List<string>? Visit(string node)
        {
            state[node] = 1;
            path.Add(node);
            foreach (var next in graph[node].Order(StringComparer.Ordinal))
            {
                if (state.GetValueOrDefault(next) == 1) return [.. path[path.IndexOf(next)..], next];
                if (state.GetValueOrDefault(next) == 0 && Visit(next) is { } found) return found;
            }
            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }
        foreach (var node in graph.Keys.Order(StringComparer.Ordinal))
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle) return cycle;
        return null;
    }

    private static string Relative(string path) => Path.GetRelativePath(Repo, path).Replace('\\', '/');

    private static string FindRepo()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Training.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("Training.sln not found above " + AppContext.BaseDirectory);
    }

    // `using Training.Shared.Models;`, `Training.Shared.Models.X`, or a sibling-relative `Models.X` inside Training.Shared.
    [GeneratedRegex(@"(?:Training\.Shared\.|(?<![\w.])(?=(?:Cluster|Collectives|Data|Messages|Models|Objectives|Spec|Storage|Training)\.[A-Z]))(\w+)")]
    private static partial Regex QualifiedUse();
}
