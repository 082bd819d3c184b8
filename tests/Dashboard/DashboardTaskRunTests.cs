using System.Globalization;
using Microsoft.Playwright;
using NUnit.Framework;
using Training.Tests.Distillation;
using Training.Tests.Support;

namespace Training.Tests.Dashboard;

/// <summary>
/// A task run (prompt/target shards, seq2seq) in a real browser: held-out exact match, which only task data has,
/// is a column of the trials table, a curve metric and a curve of the trial page.
/// </summary>
[Category("Browser")]
[NonParallelizable]
public class DashboardTaskRunTests
{
    [Test]
    public async Task TaskRun_ShowsExactMatchInTheTableAndAsACurve()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        // The reversal task at a size that learns part of it within seconds (most held-out words, not all, by step 200).
        const string yaml = """
            name: task
            seed: 5
            data: {train: tasks/train, eval: tasks/heldout}
            tokenizer: {kind: byte, sentinels: 0}
            model: {arch: encoder-decoder, d_model: 64, encoder_layers: 2, decoder_layers: 2, heads: 2, head_dim: 32, ffn_dim: 128}
            objective: {kind: seq2seq, input_length: 10, target_length: 10}
            optimizer: {lr: 2.0e-3}
            schedule: {warmup_steps: 20}
            train: {steps: 200, global_batch: 32, eval_every: 50, eval_batches: 1, log_every: 10}
            """;
        File.WriteAllText(dir.Combine("task.yaml"), yaml);
        var submit = await CliProcess.RunAsync(dir.Path, "submit", dir.Combine("task.yaml"));
        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output);
        var runId = Path.GetFileName(Directory.GetDirectories(dir.Combine("runs")).Single());
        var exact = RunState.Status(dir.Combine("runs"), "task-t000").GetProperty("eval_exact_match").GetDouble();
        Assert.That(exact, Is.GreaterThan(0).And.LessThan(1), "some held-out words reversed, not all: the shown share means something");
        var expected = (100 * exact).ToString("F1", CultureInfo.InvariantCulture) + " %";

        File.WriteAllText(dir.Combine("token"), "task-test-token\n");
        await using var dashboard = await DashboardProcess.StartAsync(dir.Path, dir.Combine("runs"), dir.Combine("token"));
        await using var browser = await DashboardBrowser.LaunchAsync();
        var page = await browser.OpenAsync(dashboard.Url + "run/" + runId);
        var final = page.Locator("#trials tbody tr td").Nth(await ColumnIndex(page, "final_exact_match"));
        await Assertions.Expect(final).ToHaveTextAsync(expected);
        // Evaluations at steps 50, 100, 150 and 200, each with its exact match.
        await page.SelectOptionAsync("#metric", "eval_exact_match");
        await Assertions.Expect(page.Locator("#curves")).ToHaveAttributeAsync("data-points", "4");
        await DashboardBrowser.ScreenshotAsync(page, "task-run");

        var trialPage = await browser.OpenAsync($"{dashboard.Url}run/{runId}/trial/task-t000");
        await Assertions.Expect(trialPage.Locator("#curve-eval_exact_match")).ToHaveAttributeAsync("data-points", "4");
        Assert.That(await trialPage.Locator("p").First.InnerTextAsync(), Does.Contain($"final {expected}"));
        Assert.That(browser.Errors[page].Concat(browser.Errors[trialPage]), Is.Empty, "script errors on the pages");
    }

    private static async Task<int> ColumnIndex(IPage page, string key)
    {
        var header = page.Locator($"#trials th[data-key={key}]");
        await Assertions.Expect(header).ToHaveCountAsync(1);
        return await header.EvaluateAsync<int>("th => th.cellIndex");
    }
}
