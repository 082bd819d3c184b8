using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Dashboard;

/// <summary>
/// The dashboard pages in a real browser, on a real finished sweep: three trials trained through the CLI, then
/// shown by <c>orchestrator dashboard</c>.
/// </summary>
[Category("Browser")]
[NonParallelizable]
public class DashboardPageTests
{
    private TempDirectory _dir = null!;
    private DashboardProcess _dashboard = null!;
    private DashboardBrowser _browser = null!;
    private string _runId = null!;
    private readonly HttpClient _http = new();

    [OneTimeSetUp]
    public async Task TrainSweepAndStartDashboard()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
        var yaml = TestCorpus.TinyExperiment(_dir.Path, name: "dash", steps: 8, extra: """
            sweep:
              grid:
                optimizer.lr: [1.0e-3, 3.0e-3, 1.0e-2]
            """).Replace("eval_every: 0", "eval_every: 2");
        File.WriteAllText(_dir.Combine("dash.yaml"), yaml);
        var submit = await CliProcess.RunAsync(_dir.Path, "submit", _dir.Combine("dash.yaml"));
        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output);
        _runId = Path.GetFileName(Directory.GetDirectories(_dir.Combine("runs")).Single());
        File.WriteAllText(_dir.Combine("token"), "page-test-token\n");
        _dashboard = await DashboardProcess.StartAsync(_dir.Path, _dir.Combine("runs"), _dir.Combine("token"));
        _browser = await DashboardBrowser.LaunchAsync();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        if (_dashboard is not null) await _dashboard.DisposeAsync();
        _http.Dispose();
        _dir?.Dispose();
    }

    private async Task<JsonElement> ApiAsync(string path) =>
        await _http.GetFromJsonAsync<JsonElement>(new Uri(new Uri(_dashboard.Url), "/dashboard/api/" + path));

    private void AssertNoScriptErrors(IPage page) => Assert.That(_browser.Errors[page], Is.Empty, "script errors on the page");

    [Test]
    public async Task RunsList_ShowsTheFinishedRunWithItsStateTrialsAndBestMetric()
    {
        var page = await _browser.OpenAsync(_dashboard.Url);
        var row = page.Locator("table.sortable tbody tr").First;
        await Assertions.Expect(row).ToContainTextAsync(_runId);
        var run = (await ApiAsync("runs"))[0];
        var cells = await row.Locator("td").AllInnerTextsAsync();
        Assert.Multiple(() =>
        {
            Assert.That(cells[2], Is.EqualTo("completed"));
            Assert.That(cells[3], Is.EqualTo("3"));
            Assert.That(cells[8], Does.StartWith("eval_loss ").And.Contain(run.GetProperty("best_trial").GetString()));
            Assert.That(run.GetProperty("compute_seconds").GetDouble(), Is.GreaterThan(0));
        });
        await DashboardBrowser.ScreenshotAsync(page, "runs");
        AssertNoScriptErrors(page);
    }

    [Test]
    public async Task RunPage_DrawsEveryTrialsCurve_SortsTheTable_AndShowsParallelCoordinatesAndInspectTable()
    {
        var page = await _browser.OpenAsync(_dashboard.Url + "run/" + _runId);
        var curves = page.Locator("#curves");
        await Assertions.Expect(curves.Locator("canvas")).ToBeVisibleAsync();
        Assert.That(await curves.GetAttributeAsync("data-series"), Is.EqualTo("3"));
        // 8 logged train steps per trial, all kept (fewer than the buckets): 24 points.
        Assert.That(int.Parse(await curves.GetAttributeAsync("data-points") ?? "0"), Is.EqualTo(24));

        // Sorting by final loss orders the rows as the run's own numbers say, then the other way round.
        var trials = (await ApiAsync($"runs/{_runId}")).GetProperty("trials").EnumerateArray()
            .Select(t => (Id: t.GetProperty("id").GetString()!, Final: t.GetProperty("final_loss").GetDouble())).ToList();
        var ascending = trials.OrderBy(t => t.Final).Select(t => t.Id).ToList();
        Assert.That(trials.Select(t => t.Final).Distinct().Count(), Is.EqualTo(3), "three different final losses, so both orders differ from each other");
        var header = page.Locator("#trials th[data-key=final_loss]");
        await header.ClickAsync();
        Assert.That(await RowIds(page), Is.EqualTo(ascending));
        Assert.That(await header.GetAttributeAsync("data-dir"), Is.EqualTo("asc"));
        await header.ClickAsync();
        Assert.That(await RowIds(page), Is.EqualTo(ascending.AsEnumerable().Reverse().ToList()));

        // Parallel coordinates: one line per trial, an axis per sweep key plus the metric (drawn after the first paint).
        await Assertions.Expect(page.Locator("#parallel")).ToHaveAttributeAsync("data-lines", "3");
        var parallel = await page.EvaluateAsync<JsonElement>(
            "() => { const o = echarts.getInstanceByDom(document.getElementById('parallel')).getOption(); return { lines: o.series[0].data.length, axes: o.parallelAxis.map(a => a.name) }; }");
        Assert.That(parallel.GetProperty("lines").GetInt32(), Is.EqualTo(3));
        Assert.That(parallel.GetProperty("axes").EnumerateArray().Select(a => a.GetString()), Is.EqualTo(new[] { "optimizer.lr", "best eval loss" }));

        // The inspect table, computed by the same code as `orchestrator inspect`.
        var inspect = page.Locator("#inspect");
        await Assertions.Expect(inspect.Locator("thead")).ToContainTextAsync("FLOPs/token");
        Assert.That(await inspect.Locator("tbody tr").CountAsync(), Is.EqualTo(3));
        // Exact match is task data's: a pretraining run shows neither its columns nor its curve choice.
        Assert.That(await page.Locator("#trials th[data-key$=exact_match]").CountAsync(), Is.EqualTo(0));
        Assert.That(await page.Locator("#metric option[value=eval_exact_match]").CountAsync(), Is.EqualTo(0));

        // Another metric and x-axis: eval loss (4 evaluations per trial) against tokens.
        await page.SelectOptionAsync("#metric", "eval_loss");
        await page.SelectOptionAsync("#x-axis", "tokens");
        await Assertions.Expect(curves).ToHaveAttributeAsync("data-points", "12");
        await DashboardBrowser.ScreenshotAsync(page, "run");
        AssertNoScriptErrors(page);
    }

    private static async Task<List<string>> RowIds(IPage page) =>
        (await page.Locator("#trials tbody tr").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.id)")).ToList();

    [Test]
    public async Task TrialPage_ShowsCurvesCheckpointsAttemptsAndTheLog()
    {
        var trial = "dash-t001";
        var page = await _browser.OpenAsync($"{_dashboard.Url}run/{_runId}/trial/{trial}");
        await Assertions.Expect(page.Locator("#trial-state")).ToHaveTextAsync("completed");
        await Assertions.Expect(page.Locator("#curve-loss")).ToHaveAttributeAsync("data-points", "8");
        await Assertions.Expect(page.Locator("#curve-eval_loss")).ToHaveAttributeAsync("data-points", "4");
        // checkpoint_every 3 over 8 steps: 3, 6 and the final 8; keep_checkpoints 2 leaves 6 and 8.
        // The table is filled by a fetch after the page renders: wait for its rows before reading them.
        await Assertions.Expect(page.Locator("#checkpoints tbody tr")).ToHaveCountAsync(3);
        var checkpoints = await page.Locator("#checkpoints tbody tr").AllInnerTextsAsync();
        Assert.That(checkpoints, Has.Count.EqualTo(3));
        Assert.That(checkpoints[0], Does.Contain("step-00000003").And.Contain("no"));
        Assert.That(checkpoints[2], Does.Contain("step-00000008").And.Contain("yes"));
        await Assertions.Expect(page.Locator("#attempts tbody tr")).ToHaveCountAsync(1);
        var attempts = await page.Locator("#attempts tbody tr").AllInnerTextsAsync();
        Assert.That(attempts, Has.Count.EqualTo(1));
        Assert.That(attempts[0], Does.Contain("completed"));
        await Assertions.Expect(page.Locator("#log")).Not.ToBeEmptyAsync();
        var log = await page.Locator("#log").InnerTextAsync();
        Assert.That(log.Split('\n'), Is.EqualTo(RunState.EventLines(_dir.Combine("runs", _runId), trial)));
        await DashboardBrowser.ScreenshotAsync(page, "trial");
        AssertNoScriptErrors(page);
    }
}
