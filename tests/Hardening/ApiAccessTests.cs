using System.Net;
using System.Net.Http.Headers;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Hardening;

/// <summary>serve with a configured token (environment) and --public-read: reads are open, changes still need the token.</summary>
public sealed class ApiAccessTests
{
    [Test]
    public async Task Serve_PublicReadWithConfiguredToken_ReadsOpenChangesNeedToken()
    {
        using var dir = new TempDirectory();
        const string token = "configured-token-0123456789abcdef";
        await using var serve = await ServedCluster.StartAsync(dir.Combine("runs"), extraArgs: ["--public-read"],
            environment: new Dictionary<string, string> { ["ORCHESTRATOR_API_TOKEN"] = token });
        using var http = new HttpClient { BaseAddress = new Uri($"http://{serve.Api}") };

        using (var list = await http.GetAsync("/api/runs"))
            Assert.That(list.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var cancel = await http.PostAsync("/api/runs/some-run/cancel", null))
            Assert.That(cancel.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/api/runs/some-run/cancel"))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var authorized = await http.SendAsync(request);
            Assert.That(authorized.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "with the token the request gets through to the lookup");
        }
        // A configured token is neither printed nor written to a file.
        Assert.That(serve.Serve.Output, Does.Not.Contain(token));
        Assert.That(File.Exists(serve.TokenFile), Is.False);
    }

    [Test]
    public async Task Serve_WithoutHost_ListensOnLoopbackOnly()
    {
        using var dir = new TempDirectory();
        await using var serve = await ServedCluster.StartAsync(dir.Combine("runs"));
        Assert.That(serve.Api, Does.StartWith("127.0.0.1:"));
        Assert.That(serve.Seed, Does.StartWith("127.0.0.1:"));
    }
}
