using System.Net;
using System.Net.Http.Headers;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Dashboard;

/// <summary>The dashboard on serve's own API port: the page shell is public, its data and every action need the token.</summary>
[NonParallelizable]
public class DashboardServeTests
{
    [Test]
    public async Task OnTheApiPort_PageIsPublic_DataAndCancelNeedTheToken()
    {
        using var dir = new TempDirectory();
        await using var serve = await ServedCluster.StartAsync(dir.Combine("runs"));
        using var http = new HttpClient { BaseAddress = new Uri($"http://{serve.Api}") };

        var shell = await http.GetAsync("/dashboard/");
        Assert.That(shell.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await shell.Content.ReadAsStringAsync(), Does.Contain("dashboard.js"));
        Assert.That((await http.GetAsync("/dashboard/vendor/uPlot.iife.min.js")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "chart library served by the program");
        Assert.That((await http.GetAsync("/dashboard/api/runs")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That((await http.PostAsync("/api/runs/none-20260101-000000/cancel", null)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));

        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", serve.Token);
        var runs = await http.GetAsync("/dashboard/api/runs");
        Assert.That(runs.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await runs.Content.ReadAsStringAsync(), Is.EqualTo("[]"));
    }
}
