namespace Training.Orchestrator.Api;

/// <summary>
/// How <c>orchestrator serve</c> guards its HTTP API: the bearer token every state-changing call (and every read,
/// unless <see cref="PublicRead"/>) must carry, the largest request body, and the folders API-submitted specs may
/// name as data.
/// </summary>
public sealed record ApiOptions(string Token, IReadOnlyList<string> DataRoots, bool PublicRead = false, long MaxBodyBytes = ApiOptions.DefaultMaxBodyBytes)
{
    public const long DefaultMaxBodyBytes = 1 << 20;

    /// <summary>The environment variable holding the token, for <c>serve</c> and for the CLI's <c>--cluster</c> calls.</summary>
    public const string TokenVariable = "ORCHESTRATOR_API_TOKEN";

    /// <summary>Where <c>serve</c> keeps a generated token, under the runs root (mode 0600).</summary>
    public const string TokenFileName = ".api-token";

    /// <summary>Never show the token in a log or a debugger display.</summary>
    public override string ToString() => $"ApiOptions {{ DataRoots = [{string.Join(", ", DataRoots)}], PublicRead = {PublicRead}, MaxBodyBytes = {MaxBodyBytes} }}";
}
