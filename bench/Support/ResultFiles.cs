using System.Text.Json;

namespace Training.Bench.Support;

/// <summary>
/// Where bench results are written, and how they name their inputs: relative to the repository, so a committed result
/// says the same on every machine. Writing refuses text that holds this machine's repository, home or temp path.
/// </summary>
public static class ResultFiles
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The folder holding Training.sln, found upwards from the working directory, else from the program.</summary>
    public static string RepositoryRoot { get; } = FindRoot(Environment.CurrentDirectory) ?? FindRoot(AppContext.BaseDirectory)
        ?? throw new InvalidOperationException($"No Training.sln above {Environment.CurrentDirectory} or {AppContext.BaseDirectory}: run the bench inside the repository.");

    /// <summary><paramref name="path"/> relative to the repository with '/' separators, e.g. "experiments/quickstart.yaml".</summary>
    public static string Relative(string path)
    {
        var relative = Path.GetRelativePath(RepositoryRoot, Path.GetFullPath(path)).Replace('\\', '/');
        // Outside the repository only the file name says anything that holds on another machine.
        return relative.StartsWith("../", StringComparison.Ordinal) || Path.IsPathRooted(relative)
            ? "(outside the repository)/" + Path.GetFileName(path)
            : relative;
    }

    public static void WriteJson(string outDir, string fileName, object result) =>
        WriteText(outDir, fileName, JsonSerializer.Serialize(result, Indented));

    public static void WriteText(string outDir, string fileName, string text)
    {
        ThrowIfMachinePath(fileName, text);
        File.WriteAllText(Path.Combine(outDir, fileName), text);
    }

    /// <summary>Results are committed: a path of the machine that ran them is a bug in the bench, not data.</summary>
    public static void ThrowIfMachinePath(string fileName, string text)
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var temp = Path.GetTempPath().TrimEnd('/');
        foreach (var machinePath in new[] { RepositoryRoot, home, temp }.Where(p => p.Length > 1))
        {
            // JSON escapes '/' as-is; also look for the escaped backslash form of Windows paths.
            if (text.Contains(machinePath, StringComparison.Ordinal) || text.Contains(machinePath.Replace("\\", "\\\\"), StringComparison.Ordinal))
                throw new InvalidOperationException($"bench result {fileName} contains the machine path {machinePath}: name inputs with ResultFiles.Relative.");
        }
    }

    private static string? FindRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Training.sln")))
                return dir.FullName;
        return null;
    }
}
