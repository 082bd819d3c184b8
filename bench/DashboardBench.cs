using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Playwright;
using Training.Bench.Support;
using Training.Orchestrator.State;

namespace Training.Bench;

/// <summary>
/// The dashboard's run page for a large sweep: a synthetic finished sweep in the run-state store (500 trials x 100k steps,
/// a step line every <c>logEvery</c> steps), served by the real <c>orchestrator dashboard</c> program. Measures the
/// time until the page's data has arrived (the page, the run JSON and the curves, fetched in that order as the page
/// does), the time until a real browser has drawn it (every trial's row, the curves, the parallel coordinates), and the
/// JSON bytes, against the size of the raw metrics logs.
/// </summary>
public static class DashboardBench
{
    public static void Run(string outDir, int trials = 500, long steps = 100_000, int logEvery = 100, string? orchestratorDll = null)
    {
        var dll = orchestratorDll ?? Path.GetFullPath(Path.Combine("orchestrator", "bin", "Release", "net10.0", "orchestrator.dll"));
        if (!File.Exists(dll)) throw new FileNotFoundException($"dashboard bench: {dll} is missing; run 'make build' first");
        var scratch = Path.Combine(Path.GetTempPath(), "bench-dashboard-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var clock = Stopwatch.StartNew();
            var (runId, rawBytes, rawLines) = WriteSyntheticRun(Path.Combine(scratch, "runs"), trials, steps, logEvery);
            var writeSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"dashboard bench: wrote {trials} trials x {steps:N0} steps ({rawLines:N0} log lines, {rawBytes / 1e6:F1} MB) in {writeSeconds:F1} s");
            using var server = StartDashboard(dll, scratch);
            using var http = new HttpClient { BaseAddress = new Uri(server.Url), Timeout = TimeSpan.FromMinutes(5) };
            var cold = LoadRunPage(http, runId);
            var warm = Enumerable.Range(0, 5).Select(_ => LoadRunPage(http, runId)).OrderBy(m => m.Seconds).ToList();
            var median = warm[warm.Count / 2];
            var loads = BrowserLoads(new Uri(new Uri(server.Url), $"/dashboard/run/{runId}").ToString(), trials, count: 7);
            var (render, complete, driver) = (Median(loads.Select(l => l.FirstRender)), Median(loads.Select(l => l.Complete)), Median(loads.Select(l => l.Driver)));
            var result = new
            {
                machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                synthetic = new { trials, steps, log_every = logEvery, log_lines = rawLines, raw_metrics_bytes = rawBytes },
                what = "HTTP time for the run page's HTML, its run JSON and its loss curves fetched one after the other, from the real orchestrator dashboard on 127.0.0.1 (the browser rows below fetch the two JSON answers at once and draw them)",
                cold_first_load = new { seconds = cold.Seconds, json_bytes = cold.JsonBytes, run_json_bytes = cold.RunBytes, curves_json_bytes = cold.CurvesBytes },
                warm_load_median_of_5 = new { seconds = median.Seconds, json_bytes = median.JsonBytes },
                browser_median_of_7 = new
                {
                    first_render_seconds = render,
                    complete_seconds = complete,
                    driver_seconds = driver,
                    loads = loads.Select(l => new { first_render = l.FirstRender, complete = l.Complete, driver = l.Driver }),
                    what = "Debian's chromium (headless, through Playwright), a fresh page each time, times from the start of navigation on the page's own clock: first render = the run header, the curves (every trial) and the first 40 rows of the trials table painted (what a 1280x900 window shows); complete = also every other row, the parallel coordinates (every line) and the inspect table below them drawn; driver = navigation to complete as the driving program saw it",
                },
                curve_points = cold.Points,
                json_vs_raw = (double)cold.JsonBytes / rawBytes,
                goals = new { seconds = 1.0, first_render_seconds = 1.0, json_bytes = 2_000_000 },
            };
            ResultFiles.WriteJson(outDir, "dashboard.json", result);
            var md = new StringBuilder()
                .AppendLine("# Dashboard run page: 500 trials x 100k steps")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture, $"Machine: {result.machine.cores} cores. Synthetic finished sweep in the run-state store (SQLite): {trials} trials x {steps:N0} steps, a step event every {logEvery} steps and an eval every 5,000 ({rawLines:N0} events, {rawBytes / 1e6:F1} MB of event JSON).")
                .AppendLine(CultureInfo.InvariantCulture, $"Measured: {result.what}.")
                .AppendLine()
                .AppendLine("| measure | value | goal |")
                .AppendLine("|---|---|---|")
                .AppendLine(CultureInfo.InvariantCulture, $"| first load after start (reads every event log once) | {cold.Seconds * 1000:F0} ms | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| **load, logs already folded (median of 5)** | **{median.Seconds * 1000:F0} ms** | < 1 s |")
                .AppendLine(CultureInfo.InvariantCulture, $"| **first render in chromium: header, curves and first 40 rows painted (median of 7 fresh pages)** | **{render * 1000:F0} ms** (range {loads.Min(l => l.FirstRender) * 1000:F0} to {loads.Max(l => l.FirstRender) * 1000:F0}) | < 1 s |")
                .AppendLine(CultureInfo.InvariantCulture, $"| whole page drawn (all 500 rows, parallel coordinates, inspect table) | {complete * 1000:F0} ms | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| the same as the driving program saw it (Playwright round trips added) | {driver * 1000:F0} ms | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| **JSON bytes (run + curves)** | **{cold.JsonBytes / 1e6:F2} MB** ({cold.RunBytes / 1e6:F2} + {cold.CurvesBytes / 1e6:F2}) | < 2 MB |")
                .AppendLine(CultureInfo.InvariantCulture, $"| raw event logs (JSON) | {rawBytes / 1e6:F1} MB | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| JSON / raw | {result.json_vs_raw:P2} | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| curve points sent (min/max per bucket) | {cold.Points:N0} | |")
                .ToString();
            ResultFiles.WriteText(outDir, "dashboard.md", md);
            Console.WriteLine(md);
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>One fresh page load in the browser, in seconds from the start of navigation (the page's own clock).</summary>
    /// <param name="FirstRender">The header, the curves and the table's first rows painted (what the top of the page shows).</param>
    /// <param name="Complete">Also the table's other rows, the parallel coordinates and the inspect table below them drawn.</param>
    /// <param name="Driver">Navigation to complete as the driving program saw it (adds Playwright's round trips).</param>
    private sealed record BrowserLoad(double FirstRender, double Complete, double Driver);

    /// <summary>Loads the run page in Debian's chromium <paramref name="count"/> times, a fresh page each time.</summary>
    private static List<BrowserLoad> BrowserLoads(string url, int trials, int count) => Task.Run(async () =>
    {
        const string chromium = "/usr/bin/chromium";
        if (!File.Exists(chromium)) throw new FileNotFoundException($"dashboard bench: {chromium} is missing (make setup installs it)");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        });
        // The page marks each part as it draws it (dashboard.js); every part must also hold all the trials.
        var complete = $"() => performance.getEntriesByName('complete').length > 0" +
                       $" && document.querySelectorAll('#trials tbody tr').length === {trials}" +
                       " && Number(document.getElementById('curves')?.dataset.points) > 0" +
                       $" && Number(document.getElementById('parallel')?.dataset.lines) === {trials}";
        var loads = new List<BrowserLoad>();
        for (var i = 0; i < count; i++)
        {
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
            var clock = Stopwatch.StartNew();
            await page.GotoAsync(url);
            await page.WaitForFunctionAsync(complete, null, new PageWaitForFunctionOptions { Timeout = 120_000 });
            var driver = clock.Elapsed.TotalSeconds;
            var marks = await page.EvaluateAsync<double[]>("() => ['first-render', 'complete'].map(m => performance.getEntriesByName(m)[0].startTime)");
            loads.Add(new BrowserLoad(marks[0] / 1000, marks[1] / 1000, driver));
            await page.CloseAsync();
        }
        return loads;
    }).GetAwaiter().GetResult();

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private sealed record PageLoad(double Seconds, long JsonBytes, long RunBytes, long CurvesBytes, long Points);

    private static PageLoad LoadRunPage(HttpClient http, string runId)
    {
        var clock = Stopwatch.StartNew();
        var html = http.GetByteArrayAsync($"/dashboard/run/{runId}").GetAwaiter().GetResult();
        var run = http.GetByteArrayAsync($"/dashboard/api/runs/{runId}").GetAwaiter().GetResult();
        var curves = http.GetByteArrayAsync($"/dashboard/api/runs/{runId}/curves?metric=loss&x=step").GetAwaiter().GetResult();
        var seconds = clock.Elapsed.TotalSeconds;
        if (html.Length == 0) throw new InvalidDataException("the run page came back empty");
        using var document = JsonDocument.Parse(curves);
        var points = document.RootElement.GetProperty("curves").EnumerateArray()
            .Sum(c => (long)c.GetProperty("y").EnumerateArray().Count(v => v.ValueKind == JsonValueKind.Number));
        using var runDocument = JsonDocument.Parse(run);
        var rows = runDocument.RootElement.GetProperty("trials").GetArrayLength();
        if (rows == 0 || points == 0) throw new InvalidDataException($"the run page has {rows} trials and {points} curve points");
        return new PageLoad(seconds, run.Length + curves.Length, run.Length, curves.Length, points);
    }

    /// <summary>A finished sweep as the coordinator records it: the run and its trials' statuses and events in the
    /// run-state store (SQLite in the runs folder), and per trial its spec.yaml in the run folder (the browser tests
    /// use it for a sweep too big to train).</summary>
    /// <param name="repository">The repository root, for experiments/quickstart.yaml (the trials' spec).</param>
    public static (string RunId, long Bytes, long Lines) WriteSyntheticRun(string runs, int trials, long steps, int logEvery, string repository = ".")
    {
        var runId = "bench-20260101-000000";
        var dir = Path.Combine(runs, runId);
        Directory.CreateDirectory(dir);
        using var store = StateLocation.Default(runs).Open();
        var spec = File.ReadAllText(Path.Combine(repository, "experiments", "quickstart.yaml"));
        var lrs = new[] { "1.0e-4", "2.0e-4", "5.0e-4", "1.0e-3", "2.0e-3", "5.0e-3", "1.0e-2", "2.0e-2", "5.0e-2", "1.0e-1" };
        var started = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var entries = new List<TrialEntry>();
        for (var t = 0; t < trials; t++)
        {
            var lr = lrs[t % lrs.Length];
            var seed = (t / lrs.Length).ToString(CultureInfo.InvariantCulture);
            entries.Add(new TrialEntry($"bench-t{t:D3}", t, new Dictionary<string, string> { ["optimizer.lr"] = lr, ["seed"] = seed }));
        }
        store.CreateRun(new RunManifest(runId, "bench", "experiments/quickstart.yaml", started, entries),
            entries.Select(e => new TrialStatus(e.Id, e.Index, TrialState.Pending, 0, steps, 0, null, null, null, null, null, null, e.Overrides, started)).ToList());
        File.WriteAllText(Path.Combine(dir, "experiment.yaml"), spec);
        long bytes = 0, lines = 0;
        foreach (var entry in entries)
        {
            var (lr, seed) = (entry.Overrides["optimizer.lr"], entry.Overrides["seed"]);
            var trialDir = Path.Combine(dir, "trials", entry.Id);
            Directory.CreateDirectory(trialDir);
            File.WriteAllText(Path.Combine(trialDir, "spec.yaml"), spec.Replace("lr: 2.0e-3", "lr: " + lr).Replace("seed: 1234", "seed: " + seed)
                .Replace("steps: 240", $"steps: {steps}").Replace("../data/", "data/"));
            var rng = new Random(entry.Index);
            var rate = double.Parse(lr, CultureInfo.InvariantCulture);
            var writes = new List<StateWrite>();
            var time = started;
            void Event(string type, long step, string body)
            {
                writes.Add(new AppendEvent(runId, entry.Id, type, step, time, body));
                bytes += Encoding.UTF8.GetByteCount(body) + 1;
                lines++;
            }
            Event("start", 0, string.Create(CultureInfo.InvariantCulture, $"{{\"type\":\"start\",\"step\":0,\"total_steps\":{steps},\"parameters\":6000000,\"resumed_from\":null,\"init_from\":null,\"time\":\"{time:O}\"}}"));
            double loss = 0;
            for (var step = logEvery; step <= steps; step += logEvery)
            {
                time = time.AddSeconds(logEvery * 0.05);
                loss = 2 + 4 * Math.Exp(-step * rate / 20) + 0.05 * rng.NextDouble();
                Event("step", step, string.Create(CultureInfo.InvariantCulture,
                    $"{{\"type\":\"step\",\"step\":{step},\"loss\":{loss:R},\"accuracy\":{0.5 - loss / 20:R},\"lr\":{rate:R},\"grad_norm\":{0.5 + rng.NextDouble():R},\"tokens_per_second\":{20000 + 1000 * rng.NextDouble():R},\"step_seconds\":0.05,\"communication_seconds\":0,\"time\":\"{time:O}\"}}"));
                if (step % 5000 == 0)
                    Event("eval", step, string.Create(CultureInfo.InvariantCulture, $"{{\"type\":\"eval\",\"step\":{step},\"loss\":{loss + 0.1:R},\"accuracy\":{0.5 - loss / 20:R},\"tokens\":4096,\"time\":\"{time:O}\"}}"));
            }
            Event("finish", steps, string.Create(CultureInfo.InvariantCulture, $"{{\"type\":\"finish\",\"outcome\":\"completed\",\"step\":{steps},\"error\":null,\"time\":\"{time:O}\"}}"));
            writes.Add(new WriteStatus(runId, new TrialStatus(entry.Id, entry.Index, TrialState.Completed, steps, steps, 6_000_000L, loss, loss + 0.1, 0.4, 20500.0,
                null, null, entry.Overrides, time)));
            store.Apply(writes);
        }
        return (runId, bytes, lines);
    }

    private sealed class Server(Process process, string url) : IDisposable
    {
        public string Url => url;

        public void Dispose()
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit();
            process.Dispose();
        }
    }

    private static Server StartDashboard(string dll, string scratch)
    {
        File.WriteAllText(Path.Combine(scratch, "token"), "bench-token\n");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { dll, "dashboard", "--runs", Path.Combine(scratch, "runs"), "--port", "0", "--token-file", Path.Combine(scratch, "token") })
            info.ArgumentList.Add(a);
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start orchestrator dashboard");
        while (process.StandardOutput.ReadLine() is { } line)
        {
            if (!line.StartsWith("dashboard: ", StringComparison.Ordinal)) continue;
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            var url = new Uri(line["dashboard: ".Length..].Split(' ')[0]);
            return new Server(process, $"{url.Scheme}://{url.Authority}");
        }
        throw new InvalidOperationException($"orchestrator dashboard exited: {process.StandardError.ReadToEnd()}");
    }
}
