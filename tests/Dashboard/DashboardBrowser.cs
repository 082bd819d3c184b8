using System.Diagnostics;
using Microsoft.Playwright;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Dashboard;

/// <summary>The real <c>orchestrator dashboard</c> program on a free port, for a runs folder; stopped on dispose.</summary>
public sealed class DashboardProcess : IAsyncDisposable
{
    private readonly Process _process;

    private DashboardProcess(Process process, string url)
    {
        _process = process;
        Url = url;
    }

    /// <summary>The dashboard's address, ending in <c>/dashboard/</c>.</summary>
    public string Url { get; }

    public static async Task<DashboardProcess> StartAsync(string workingDirectory, string runs, string tokenFile)
    {
        var process = CliProcess.Start(workingDirectory, "dashboard", "--runs", runs, "--port", "0", "--token-file", tokenFile);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token)
                       ?? throw new InvalidOperationException($"orchestrator dashboard exited: {await process.StandardError.ReadToEndAsync()}");
            if (line.StartsWith("dashboard: ", StringComparison.Ordinal))
            {
                // Keep draining its output so the child never blocks on a full pipe.
                _ = process.StandardOutput.ReadToEndAsync();
                _ = process.StandardError.ReadToEndAsync();
                return new DashboardProcess(process, line["dashboard: ".Length..].Split(' ')[0]);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}

/// <summary>Debian's chromium driven by Playwright (its own browser download cannot work here).</summary>
public sealed class DashboardBrowser : IAsyncDisposable
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private readonly IPlaywright _playwright;

    private DashboardBrowser(IPlaywright playwright, IBrowser browser)
    {
        _playwright = playwright;
        Browser = browser;
    }

    public IBrowser Browser { get; }

    public static async Task<DashboardBrowser> LaunchAsync()
    {
        if (!File.Exists(ChromiumPath))
            Assert.Fail($"{ChromiumPath} is missing: the browser tests need Debian's chromium (make setup installs it)");
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        });
        return new DashboardBrowser(playwright, browser);
    }

    public async Task<IPage> OpenAsync(string url)
    {
        var page = await Browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        // A script error on the page fails the test that made it.
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        // A 401 is how the page learns it needs the token; any other failed request or console error counts.
        page.Console += (_, m) => { if (m.Type == "error" && !m.Text.Contains("status of 401", StringComparison.Ordinal)) errors.Add(m.Text); };
        Errors[page] = errors;
        await page.GotoAsync(url);
        return page;
    }

    public Dictionary<IPage, List<string>> Errors { get; } = [];

    /// <summary>A full-page screenshot, attached to the test's results.</summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        var path = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"dashboard-{name}.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        TestContext.AddTestAttachment(path, $"dashboard {name} page");
    }

    public async ValueTask DisposeAsync()
    {
        await Browser.CloseAsync();
        _playwright.Dispose();
    }
}
