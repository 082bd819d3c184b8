using System.Text.Json;
using NUnit.Framework;

namespace Training.Tests.Support;

/// <summary>Reading what a run recorded and where the repository is, for tests that drive real processes.</summary>
public static class RunEvents
{
    /// <summary>The events of the first trial under <paramref name="folder"/> (a runs folder or one run), oldest
    /// first. Empty when nothing is recorded yet.</summary>
    public static List<JsonElement> Read(string folder) => RunState.Events(folder);

    public static string Type(JsonElement e) => e.GetProperty("type").GetString()!;

    /// <summary>The folder holding Training.sln above the test binaries.</summary>
    public static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "Training.sln"))) return folder.FullName;
        throw new DirectoryNotFoundException("no Training.sln above " + TestContext.CurrentContext.TestDirectory);
    }
}
