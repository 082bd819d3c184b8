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
    /// A fresh random token, written to RUNS/.api-token with mode 0600 (created with that mode, never readable by
    /// others even for a moment) so the CLI on this machine finds it; returns the file's path.
    /// </summary>
    public static string Generate(string runsRoot, out string token)
    {
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
}
