using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using NUnit.Framework;
using Training.Bench;
using Training.Tests.Support;

namespace Training.Tests.Dashboard;

/// <summary>
/// A sweep bigger than a screen (the bench's synthetic finished run, 120 trials): the run page paints its top first
/// and then every row, line and curve, and sorting covers the rows drawn after the first paint.
/// </summary>
[Category("Browser")]
[NonParallelizable]
public class DashboardLargeRunTests
{
    [Test]
    public async Task LargeSweep_FirstPaintThenEveryTrial_AndSortingCoversThemAll()
    {
        const int trials = 120;
        using var dir = new TempDirectory();
        var (runId, _, _) = DashboardBench.WriteSyntheticRun(dir.Combine("runs"), trials, steps: 2_000, logEvery: 100, RunEvents.RepositoryRoot());
        File.WriteAllText(dir.Combine("token"), "large-run-token\n");
        await using var dashboard = await DashboardProcess.StartAsync(dir.Path, dir.Combine("runs"), dir.Combine("token"));
        await using var browser = await DashboardBrowser.LaunchAsync();

        var page = await browser.OpenAsync(dashboard.Url + "run/" + runId);
        await page.WaitForFunctionAsync("() => performance.getEntriesByName('complete').length > 0");

        var marks = await page.EvaluateAsync<double[]>("() => ['first-render', 'complete'].map(m => performance.getEntriesByName(m)[0].startTime)");
        var rows = await page.Locator("#trials tbody tr").CountAsync();
        var lines = await page.Locator("#parallel").GetAttributeAsync("data-lines");
        var series = await page.Locator("#curves").GetAttributeAsync("data-series");
        Assert.Multiple(() =>
        {
            Assert.That(marks[0], Is.LessThanOrEqualTo(marks[1]), "the top of the page is painted before the rest is drawn");
            Assert.That(rows, Is.EqualTo(trials));
            Assert.That(lines, Is.EqualTo(trials.ToString()));
            Assert.That(series, Is.EqualTo(trials.ToString()));
        });

        // Sorting by final loss orders all 120 rows as the run's own numbers say.
        using var http = new HttpClient();
        var view = await http.GetFromJsonAsync<JsonElement>(new Uri(new Uri(dashboard.Url), $"/dashboard/api/runs/{runId}"));
        var ascending = view.GetProperty("trials").EnumerateArray()
            .Select(t => (Id: t.GetProperty("id").GetString()!, Final: t.GetProperty("final_loss").GetDouble()))
            .OrderBy(t => t.Final).Select(t => t.Id).ToList();
        await page.Locator("#trials th[data-key=final_loss]").ClickAsync();
        var shown = await page.Locator("#trials tbody tr").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.id)");
        Assert.That(shown, Is.EqualTo(ascending));
        Assert.That(browser.Errors[page], Is.Empty, "script errors on the page");
    }
}
