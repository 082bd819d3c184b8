using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Training.Orchestrator.State;

namespace Training.Orchestrator.Api;

/// <summary>What <c>orchestrator submit|status|cancel --cluster HOST:PORT</c> uses to talk to <c>orchestrator serve</c>.</summary>
public sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;

    public ApiClient(string address, string? token)
    {
        _http = new HttpClient { BaseAddress = new Uri(address.Contains("://") ? address : $"http://{address}"), Timeout = TimeSpan.FromSeconds(60) };
        if (token is not null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>
    /// The token for <c>--cluster</c> calls: <c>--token-file</c>, else $ORCHESTRATOR_API_TOKEN, else the token file
    /// a local <c>serve</c> wrote under the runs root; null when there is none.
    /// </summary>
    public static string? FindToken(string? tokenFile, string runsRoot)
    {
        if (tokenFile is not null) return ReadTokenFile(tokenFile);
        if (Environment.GetEnvironmentVariable(ApiOptions.TokenVariable) is { Length: > 0 } fromEnvironment) return fromEnvironment.Trim();
        var beside = Path.Combine(runsRoot, ApiOptions.TokenFileName);
        return File.Exists(beside) ? ReadTokenFile(beside) : null;
    }

    /// <summary>A token file's first line; <see cref="ArgumentException"/> when it cannot be read or is empty.</summary>
    public static string ReadTokenFile(string path)
    {
        string text;
        try
        {
            using var reader = new StreamReader(path);
            text = reader.ReadLine() ?? "";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"cannot read the token file {path}: {e.Message}", e);
        }
        text = text.Trim();
        if (text.Length == 0) throw new ArgumentException($"the token file {path} is empty");
        return text;
    }

    public Task<SubmitResponse> SubmitAsync(SubmitRequest request) => SendAsync<SubmitResponse>(HttpMethod.Post, "/api/runs", request);

    public Task<RunSummary> RunAsync(string id) => SendAsync<RunSummary>(HttpMethod.Get, $"/api/runs/{Uri.EscapeDataString(id)}", null);

    public Task<List<RunSummary>> RunsAsync() => SendAsync<List<RunSummary>>(HttpMethod.Get, "/api/runs", null);

    /// <summary>One page of a trial's metrics log: the events after sequence number <paramref name="after"/>, oldest first.</summary>
    public Task<List<StoredEvent>> EventsAsync(string runId, string trialId, long after) =>
        SendAsync<List<StoredEvent>>(HttpMethod.Get, $"/api/runs/{Uri.EscapeDataString(runId)}/trials/{Uri.EscapeDataString(trialId)}/events?after={after}", null);

    public Task<RunSummary> CancelAsync(string id) => SendAsync<RunSummary>(HttpMethod.Post, $"/api/runs/{Uri.EscapeDataString(id)}/cancel", null);

    public Task<RunSummary> ResumeAsync(string id, ResumeRequest? request = null) =>
        SendAsync<RunSummary>(HttpMethod.Post, $"/api/runs/{Uri.EscapeDataString(id)}/resume", request);

    private async Task<T> SendAsync<T>(HttpMethod method, string path, object? body)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = JsonContent.Create(body, options: RunStore.Json);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request);
        }
        catch (HttpRequestException e)
        {
            throw new ArgumentException($"cannot reach the orchestrator at {_http.BaseAddress}: {e.Message}", e);
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync();
            if (!response.IsSuccessStatusCode)
            {
                var error = TryParse<ApiError>(text)?.Error ?? text;
                var hint = response.StatusCode == System.Net.HttpStatusCode.Unauthorized
                    ? $" (give the token with --token-file FILE or ${ApiOptions.TokenVariable})"
                    : "";
                throw new ArgumentException($"{_http.BaseAddress}{path.TrimStart('/')}: {(int)response.StatusCode} {error}{hint}");
            }
            return TryParse<T>(text) ?? throw new InvalidDataException($"{_http.BaseAddress}{path.TrimStart('/')}: unexpected answer '{text}'");
        }
    }

    private static T? TryParse<T>(string text)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(text, RunStore.Json);
        }
        catch (JsonException)
        {
            return default;
        }
    }

    public void Dispose() => _http.Dispose();
}
