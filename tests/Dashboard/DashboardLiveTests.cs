using Microsoft.Playwright;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Dashboard;

/// <summary>A run that is still training: its curve grows on the open page, and cancelling from the page needs the token.</summary>
[Category("Browser")]
[NonParallelizable]
public class DashboardLiveTests
{
    [Test]
    public async Task LiveRun_CurveGrowsWithoutReload_AndCancelFromThePageNeedsTheToken()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        File.WriteAllText(dir.Combine("live.yaml"), TestCorpus.TinyExperiment(dir.Path, name: "live", steps: 2000).Replace("checkpoint_every: 3", "checkpoint_every: 100"));
        const string token = "live-test-token";
        File.WriteAllText(dir.Combine("token"), token + "\n");
        using var submit = CliProcess.Start(dir.Path, "submit", dir.Combine("live.yaml"));
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(4));
        var runDir = await WaitForAsync(() => Directory.Exists(dir.Combine("runs")) ? Directory.GetDirectories(dir.Combine("runs")).SingleOrDefault() : null,
            run => RunState.Steps(run) >= 3, TimeSpan.FromMinutes(2));
        var runId = Path.GetFileName(runDir);

        await using var dashboard = await DashboardProcess.StartAsync(dir.Path, dir.Combine("runs"), dir.Combine("token"));
        await using var browser = await DashboardBrowser.LaunchAsync();
        var page = await browser.OpenAsync(dashboard.Url + "run/" + runId);
        var curves = page.Locator("#curves");
        await Assertions.Expect(curves.Locator("canvas")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#run-state")).ToHaveTextAsync("running");
        var before = int.Parse(await curves.GetAttributeAsync("data-points") ?? "0");
        // A mark on the window: a reload would lose it.
        await page.EvaluateAsync("() => { window.__sameDocument = true; }");
        await page.WaitForFunctionAsync($"() => Number(document.getElementById('curves').dataset.points) > {before}",
            null, new PageWaitForFunctionOptions { Timeout = 60_000 });
        Assert.That(await page.EvaluateAsync<bool>("() => window.__sameDocument === true"), Is.True, "the page was not reloaded");
        await DashboardBrowser.ScreenshotAsync(page, "live-run");

        // Without a token the page asks for it and nothing is cancelled.
        await page.ClickAsync("#cancel");
        await Assertions.Expect(page.Locator("#token-box")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#message")).ToContainTextAsync("needs the API token");
        // A wrong token is refused by the server.
        await page.FillAsync("#token-input", "not-the-token");
        await page.ClickAsync("#token-save");
        await page.ClickAsync("#cancel");
        await Assertions.Expect(page.Locator("#message")).ToContainTextAsync("missing or wrong API token");
        Assert.That(RunState.CancelRequested(runDir), Is.False, "no cancel without the right token");

        await page.FillAsync("#token-input", token);
        await page.ClickAsync("#token-save");
        await page.ClickAsync("#cancel");
        await Assertions.Expect(page.Locator("#message")).ToContainTextAsync("cancel requested");
        var result = await finished;
        Assert.That(result.ExitCode, Is.EqualTo(130), result.Output);
        // The page follows the run to its end by itself.
        await Assertions.Expect(page.Locator("#run-state")).ToHaveTextAsync("cancelled", new LocatorAssertionsToHaveTextOptions { Timeout = 20_000 });
        Assert.That(browser.Errors[page], Is.Empty, "script errors on the page");
        Assert.That(await page.EvaluateAsync<string>("() => document.body.innerText"), Does.Not.Contain(token), "the token is never shown");
    }

    private static async Task<string> WaitForAsync(Func<string?> find, Func<string, bool> ready, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (find() is { } found && ready(found)) return found;
            await Task.Delay(100);
        }
        throw new TimeoutException("the run did not start training in time");
    }
}
