using System.Net.Http.Json;
using System.Text.Json;
using Training.Orchestrator.State;

namespace Training.Orchestrator.Api;

/// <summary>What <c>orchestrator submit|status|cancel --cluster HOST:PORT</c> uses to talk to <c>orchestrator serve</c>.</summary>
public sealed class ApiClient(string address) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = new Uri(address.Contains("://") ? address : $"http://{address}"), Timeout = TimeSpan.FromSeconds(60) };

    public Task<SubmitResponse> SubmitAsync(SubmitRequest request) => SendAsync<SubmitResponse>(HttpMethod.Post, "/api/runs", request);

    public Task<RunSummary> RunAsync(string id) => SendAsync<RunSummary>(HttpMethod.Get, $"/api/runs/{Uri.EscapeDataString(id)}", null);

    public Task<List<RunSummary>> RunsAsync() => SendAsync<List<RunSummary>>(HttpMethod.Get, "/api/runs", null);

    public Task<RunSummary> CancelAsync(string id) => SendAsync<RunSummary>(HttpMethod.Post, $"/api/runs/{Uri.EscapeDataString(id)}/cancel", null);

    public Task<RunSummary> ResumeAsync(string id) => SendAsync<RunSummary>(HttpMethod.Post, $"/api/runs/{Uri.EscapeDataString(id)}/resume", null);

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
                throw new ArgumentException($"{_http.BaseAddress}{path.TrimStart('/')}: {(int)response.StatusCode} {error}");
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
