using System.Security.Cryptography;
using Training.Orchestrator.Api;

namespace Training.Orchestrator.Cli;

/// <summary>Where <c>orchestrator serve</c> gets its API token and its data folders.</summary>
internal static class ServeToken
{
    /// <summary>The token from <c>--token-file</c>, else $ORCHESTRATOR_API_TOKEN; null when neither is given.</summary>
    public static string? Configured(string? tokenFile)
    {
        if (tokenFile is not null) return ApiClient.ReadTokenFile(tokenFile);
        return Environment.GetEnvironmentVariable(ApiOptions.TokenVariable) is { Length: > 0 } token ? token.Trim() : null;
    }

    /// <summary>
    /// The token an earlier serve generated in RUNS/.api-token, else a fresh random one written there with mode 0600 (created with that mode, never readable by
    /// others even for a moment) so the CLI on this machine finds it; returns the file's path.
    /// </summary>
    public static string Generate(string runsRoot, out string token)
    {
        // A restarted serve keeps the token it generated before (the file is only readable by its owner), so clients
        // following a run carry on across the restart.
        var existing = Path.Combine(runsRoot, ApiOptions.TokenFileName);
        if (File.Exists(existing) && ReusableToken(existing) is { } kept)
        {
            token = kept;
            return existing;
        }
        token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        Directory.CreateDirectory(runsRoot);
        var path = Path.Combine(runsRoot, ApiOptions.TokenFileName);
        File.Delete(path); // an existing file keeps its mode; start from none
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var writer = new StreamWriter(path, options)) writer.WriteLine(token);
        return path;
    }

    /// <summary><c>--data-root</c> (folders separated by ':'), else $ORCHESTRATOR_DATA_ROOTS, else the current folder.</summary>
    public static IReadOnlyList<string> DataRoots(string? option)
    {
        var text = option ?? Environment.GetEnvironmentVariable("ORCHESTRATOR_DATA_ROOTS");
        if (string.IsNullOrWhiteSpace(text)) return [Path.GetFullPath(Environment.CurrentDirectory)];
        return text.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => Path.TrimEndingDirectorySeparator(Path.GetFullPath(d))).ToList();
    }

    /// <summary>The token in an earlier generated file, if the file is still private to its owner and well formed.</summary>
    private static string? ReusableToken(string path)
    {
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
            return null;
        var text = File.ReadAllText(path).Trim();
        return text.Length == 64 && text.All(Uri.IsHexDigit) ? text : null;
    }
}
