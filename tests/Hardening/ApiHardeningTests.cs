using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Hardening;

/// <summary>
/// A real <c>orchestrator serve</c> on 127.0.0.1 (no workers: accepted trials wait) fed hostile requests: each gets a
/// JSON error with the right status within a time bound, the server's memory stays bounded, it keeps answering, the
/// token is needed and never shown twice, and nothing is written outside the runs folder.
/// </summary>
[NonParallelizable]
public sealed class ApiHardeningTests
{
    private TempDirectory _dir = null!;
    private ServedCluster _serve = null!;
    private HttpClient _http = null!;
    private string _token = null!;

    private static readonly string[] Expected = ["train", "eval", "runs", "experiment.yaml"];

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
        File.WriteAllText(_dir.Combine("experiment.yaml"), TestCorpus.TinyExperiment(_dir.Path, "tiny"));
        _serve = await ServedCluster.StartAsync(_dir.Combine("runs"), dataRoot: _dir.Path);
        _token = _serve.Token;
        _http = new HttpClient { BaseAddress = new Uri($"http://{_serve.Api}"), Timeout = TimeSpan.FromSeconds(30) };
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _http.Dispose();
        await _serve.DisposeAsync();
        _dir.Dispose();
    }

    private string Yaml => TestCorpus.TinyExperiment(_dir.Path, "tiny");

    private JsonObject Submission(string? experiment = "tiny", string? specYaml = null, string? trialId = "tiny-t000", string? experimentYaml = null) => new()
    {
        ["experiment"] = experiment,
        ["source"] = _dir.Combine("experiment.yaml"),
        ["experiment_yaml"] = experimentYaml ?? Yaml,
        ["trials"] = new JsonArray(new JsonObject
        {
            ["id"] = trialId,
            ["index"] = 0,
            ["spec_yaml"] = specYaml ?? Yaml,
            ["overrides"] = new JsonObject(),
        }),
    };

    private static HttpContent Json(JsonNode body) => new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");

    private async Task<(HttpStatusCode Status, string Body, TimeSpan Took)> SendAsync(HttpMethod method, string path, HttpContent? content = null, string? token = "")
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        var bearer = token == "" ? _token : token;
        if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        var clock = Stopwatch.StartNew();
        using var response = await _http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, body, clock.Elapsed);
    }

    private async Task<string> SubmitValidAsync()
    {
        var (status, body, _) = await SendAsync(HttpMethod.Post, "/api/runs", Json(Submission()));
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body);
        return JsonDocument.Parse(body).RootElement.GetProperty("run_id").GetString()!;
    }

    /// <summary>A JSON {"error": "..."} that shows no server path, no file bytes and no other run's id.</summary>
    private void AssertCleanError(string body, params string[] otherRunIds)
    {
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error").GetString();
        Assert.That(error, Is.Not.Null.And.Not.Empty);
        Assert.That(body, Does.Not.Contain(_serve.RunsDirectory));
        Assert.That(body, Does.Not.Contain("root:x:0:0"));
        foreach (var id in otherRunIds) Assert.That(body, Does.Not.Contain(id));
    }

    private void AssertNothingOutsideRuns()
    {
        var entries = Directory.EnumerateFileSystemEntries(_dir.Path).Select(Path.GetFileName).ToList();
        Assert.That(entries, Is.SubsetOf(Expected), "only the corpus, the experiment and the runs folder are here");
        Assert.That(Directory.EnumerateFileSystemEntries(Path.GetTempPath(), "escaped*"), Is.Empty);
    }

    private async Task AssertStillServingAsync()
    {
        var (status, body, took) = await SendAsync(HttpMethod.Get, "/api/runs");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body + _serve.Serve.Output);
        Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(_serve.Serve.HasExited, Is.False);
        Assert.That(_serve.Serve.ResidentBytes(), Is.LessThan(1536L << 20), "the server's resident memory stays under 1.5 GB");
    }

    public static IEnumerable<TestCaseData> HostileBodies()
    {
        TestCaseData Case(string name, Func<ApiHardeningTests, HttpContent> body, HttpStatusCode status, string message) =>
            new TestCaseData(body, status, message).SetName($"Submit_{name}_Returns{(int)status}");
        yield return Case("MalformedJson", _ => new StringContent("{\"experiment\": ", Encoding.UTF8, "application/json"), HttpStatusCode.BadRequest, "not a submission in JSON");
        yield return Case("EmptyObject", _ => new StringContent("{}", Encoding.UTF8, "application/json"), HttpStatusCode.BadRequest, "lacks experiment");
        yield return Case("JsonNull", _ => new StringContent("null", Encoding.UTF8, "application/json"), HttpStatusCode.BadRequest, "empty");
        yield return Case("EmptyBody", _ => new StringContent("", Encoding.UTF8, "application/json"), HttpStatusCode.BadRequest, "not a submission in JSON");
        yield return Case("UnknownField", t => { var s = t.Submission(); s["priority"] = 9; return Json(s); }, HttpStatusCode.BadRequest, "a field this server does not know");
        yield return Case("WrongType", _ => new StringContent("{\"experiment\": 5}", Encoding.UTF8, "application/json"), HttpStatusCode.BadRequest, "not a submission in JSON");
        yield return Case("NotJsonContentType", _ => new StringContent("name: x", Encoding.UTF8, "text/yaml"), HttpStatusCode.UnsupportedMediaType, "application/json");
        yield return Case("TraversalExperiment", t => Json(t.Submission(experiment: "../escaped")), HttpStatusCode.BadRequest, "experiment must match");
        yield return Case("AbsoluteExperiment", t => Json(t.Submission(experiment: "/tmp/escaped")), HttpStatusCode.BadRequest, "experiment must match");
        yield return Case("TraversalTrialId", t => Json(t.Submission(trialId: "../../../escaped")), HttpStatusCode.BadRequest, "id must match");
        yield return Case("MissingTrialId", t => Json(t.Submission(trialId: null)), HttpStatusCode.BadRequest, "lacks trials");
        yield return Case("DeepYaml", t => Json(t.Submission(specYaml: HostileYaml.DeepFlow)), HttpStatusCode.BadRequest, "nesting too deep");
        yield return Case("AliasBomb", t => Json(t.Submission(specYaml: HostileYaml.AliasBombInSweep)), HttpStatusCode.BadRequest, "aliases expand to more than");
        yield return Case("AliasBombAsExperimentYaml", t => Json(t.Submission(experimentYaml: HostileYaml.AliasBomb)), HttpStatusCode.BadRequest, "aliases expand to more than");
        yield return Case("NonYamlExperiment", t => Json(t.Submission(experimentYaml: "just some text, not an experiment")), HttpStatusCode.BadRequest, "expected a mapping");
        yield return Case("NulInYaml", t => Json(t.Submission(specYaml: HostileYaml.Nul)), HttpStatusCode.BadRequest, "U+0000");
        yield return Case("DataOutsideRoots", t => Json(t.Submission(specYaml: t.Yaml.Replace("train: train", "train: /etc/passwd"))), HttpStatusCode.BadRequest, "not under the data folders");
        yield return Case("DataTraversal", t => Json(t.Submission(specYaml: t.Yaml.Replace("train: train", "train: ../../../../etc/*"))), HttpStatusCode.BadRequest, "not under the data folders");
        yield return Case("HugeScalarUnderLimit", t => Json(t.Submission(specYaml: t.Yaml.Replace("name: tiny", "name: " + new string((char)120, 900_000)))), HttpStatusCode.BadRequest, "its spec names the experiment");
        yield return Case("HugeBadName", t => Json(t.Submission(specYaml: t.Yaml.Replace("name: tiny", "name: X" + new string((char)120, 900_000)))), HttpStatusCode.BadRequest, "characters left out");
    }

    [TestCaseSource(nameof(HostileBodies))]
    public async Task Submit_HostileBody_ClearJsonError(Func<ApiHardeningTests, HttpContent> body, HttpStatusCode expected, string message)
    {
        var runsBefore = Directory.EnumerateDirectories(_serve.RunsDirectory).Count();
        var (status, text, took) = await SendAsync(HttpMethod.Post, "/api/runs", body(this));
        Assert.That(status, Is.EqualTo(expected), text);
        Assert.That(text, Does.Contain(message), text.Length > 3000 ? text[..3000] : text);
        Assert.That(text.Length, Is.LessThan(10_000), "a short error, not an echo of the input");
        AssertCleanError(text);
        Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(15)));
        await AssertStillServingAsync();
        AssertNothingOutsideRuns();
        Assert.That(Directory.EnumerateDirectories(_serve.RunsDirectory).Count(), Is.EqualTo(runsBefore), "a refused submission leaves no run folder");
    }

    [Test]
    public async Task Submit_WithoutToken_Returns401AndWritesNothing()
    {
        var before = Directory.EnumerateDirectories(_serve.RunsDirectory).Count();
        var (status, body, _) = await SendAsync(HttpMethod.Post, "/api/runs", Json(Submission()), token: null);
        Assert.That(status, Is.EqualTo(HttpStatusCode.Unauthorized));
        AssertCleanError(body);
        Assert.That(Directory.EnumerateDirectories(_serve.RunsDirectory).Count(), Is.EqualTo(before));
    }

    [Test]
    public async Task Submit_WrongToken_Returns401()
    {
        var (status, body, _) = await SendAsync(HttpMethod.Post, "/api/runs", Json(Submission()), token: _token[..^1] + (_token[^1] == 'a' ? 'b' : 'a'));
        Assert.That(status, Is.EqualTo(HttpStatusCode.Unauthorized));
        AssertCleanError(body);
    }

    [Test]
    public async Task ListRuns_WithoutToken_Returns401()
    {
        var (status, body, _) = await SendAsync(HttpMethod.Get, "/api/runs", token: null);
        Assert.That(status, Is.EqualTo(HttpStatusCode.Unauthorized));
        AssertCleanError(body);
    }

    [Test]
    public async Task Cancel_WithoutToken_Returns401AndDoesNotCancel()
    {
        var id = await SubmitValidAsync();
        var (status, body, _) = await SendAsync(HttpMethod.Post, $"/api/runs/{id}/cancel", token: null);
        Assert.That(status, Is.EqualTo(HttpStatusCode.Unauthorized));
        AssertCleanError(body);
        Assert.That(RunState.CancelRequested(Path.Combine(_serve.RunsDirectory, id)), Is.False);
    }

    [Test]
    public async Task Cancel_IdPrefix_Returns404AndDoesNotCancel()
    {
        var id = await SubmitValidAsync();
        var (status, body, _) = await SendAsync(HttpMethod.Post, $"/api/runs/{id[..6]}/cancel");
        Assert.That(status, Is.EqualTo(HttpStatusCode.NotFound), body);
        AssertCleanError(body, id);
        Assert.That(RunState.CancelRequested(Path.Combine(_serve.RunsDirectory, id)), Is.False);

        var (exact, exactBody, _) = await SendAsync(HttpMethod.Post, $"/api/runs/{id}/cancel");
        Assert.That(exact, Is.EqualTo(HttpStatusCode.OK), exactBody);
        Assert.That(RunState.CancelRequested(Path.Combine(_serve.RunsDirectory, id)), Is.True);
    }

    [Test]
    public async Task Get_UnknownRun_Returns404WithoutListingRunsOrPaths()
    {
        var id = await SubmitValidAsync();
        var (status, body, _) = await SendAsync(HttpMethod.Get, "/api/runs/nosuchrun");
        Assert.That(status, Is.EqualTo(HttpStatusCode.NotFound));
        AssertCleanError(body, id);
    }

    [TestCase("..%2F..%2Fetc")]
    [TestCase("%2Fetc%2Fpasswd")]
    [TestCase("UPPER")]
    [TestCase("a.b")]
    [TestCase("-x")]
    public async Task Runs_HostileRunId_Returns400(string id)
    {
        foreach (var (method, path) in new[] { (HttpMethod.Get, $"/api/runs/{id}"), (HttpMethod.Post, $"/api/runs/{id}/cancel"), (HttpMethod.Post, $"/api/runs/{id}/resume") })
        {
            var (status, body, _) = await SendAsync(method, path);
            Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest).Or.EqualTo(HttpStatusCode.NotFound), $"{method} {path}: {body}");
            AssertCleanError(body);
        }
        AssertNothingOutsideRuns();
    }

    [Test]
    public async Task Get_AmbiguousPrefix_Returns409WithoutNamingTheRuns()
    {
        var first = await SubmitValidAsync();
        var second = await SubmitValidAsync();
        var (status, body, _) = await SendAsync(HttpMethod.Get, "/api/runs/tiny-");
        Assert.That(status, Is.EqualTo(HttpStatusCode.Conflict), body);
        Assert.That(body, Does.Contain("give the full id"));
        AssertCleanError(body, first, second);
        var (resume, resumeBody, _) = await SendAsync(HttpMethod.Post, "/api/runs/tiny-/resume");
        Assert.That(resume, Is.EqualTo(HttpStatusCode.Conflict), resumeBody);
    }

    [Test]
    public async Task Get_RunByUniquePrefix_Returns200()
    {
        var yaml = TestCorpus.TinyExperiment(_dir.Path, "solo");
        var (submitted, submitBody, _) = await SendAsync(HttpMethod.Post, "/api/runs",
            Json(Submission(experiment: "solo", specYaml: yaml, trialId: "solo-t000", experimentYaml: yaml)));
        Assert.That(submitted, Is.EqualTo(HttpStatusCode.OK), submitBody);
        var id = JsonDocument.Parse(submitBody).RootElement.GetProperty("run_id").GetString()!;
        var (status, body, _) = await SendAsync(HttpMethod.Get, "/api/runs/sol");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("id").GetString(), Is.EqualTo(id));
        // ... but a prefix never cancels.
        var (cancel, _, _) = await SendAsync(HttpMethod.Post, "/api/runs/sol/cancel");
        Assert.That(cancel, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task Token_PrintedOnceAndNeverWrittenElsewhere()
    {
        await SubmitValidAsync();
        await SendAsync(HttpMethod.Post, "/api/runs", Json(Submission()), token: null);
        var output = _serve.Serve.Output;
        Assert.That(CountOf(output, _token), Is.EqualTo(1), "the token is printed once, at start");
        var tokenFile = _serve.TokenFile;
        if (!OperatingSystem.IsWindows())
            Assert.That(File.GetUnixFileMode(tokenFile), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        foreach (var file in Directory.EnumerateFiles(_dir.Path, "*", SearchOption.AllDirectories).Where(f => f != tokenFile))
        {
            if (new FileInfo(file).Length > 4 << 20) continue;
            Assert.That(File.ReadAllText(file), Does.Not.Contain(_token), file);
        }
    }

    [Test]
    public async Task CliStatus_WithTokenFile_Succeeds_WithoutToken_Refused()
    {
        var id = await SubmitValidAsync();
        var ok = await CliProcess.RunAsync(_dir.Path, "status", "--cluster", _serve.Api, "--token-file", _serve.TokenFile);
        Assert.That(ok.ExitCode, Is.EqualTo(0), ok.Output);
        Assert.That(ok.Stdout, Does.Contain(id));
        // The runs folder of a local serve holds the token file, so --runs is enough on the same machine.
        var byRuns = await CliProcess.RunAsync(_dir.Path, "status", id, "--cluster", _serve.Api, "--runs", _serve.RunsDirectory);
        Assert.That(byRuns.ExitCode, Is.EqualTo(0), byRuns.Output);

        // From a folder without a runs folder beside it, and no token given, the call is refused.
        var refused = await CliProcess.RunAsync(_dir.Combine("eval"), "status", "--cluster", _serve.Api);
        Assert.That(refused.ExitCode, Is.EqualTo(2), refused.Output);
        Assert.That(refused.Stderr, Does.Contain("401").And.Contain("--token-file"));
        Assert.That(refused.Output, Does.Not.Contain(_token));
    }

    [Test]
    public async Task CliCancel_IdPrefixOverCluster_RefusedAndNothingCancelled()
    {
        var id = await SubmitValidAsync();
        var result = await CliProcess.RunAsync(_dir.Path, "cancel", id[..8], "--cluster", _serve.Api, "--token-file", _serve.TokenFile);
        Assert.That(result.ExitCode, Is.EqualTo(2), result.Output);
        Assert.That(result.Stderr, Does.Contain("404"));
        Assert.That(RunState.CancelRequested(Path.Combine(_serve.RunsDirectory, id)), Is.False);
    }

    private static int CountOf(string text, string part)
    {
        var count = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    [Test]
    public async Task Submit_Oversized25MBWithLength_Returns413BeforeTheBodyIsSent()
    {
        // Only the headers go out: the answer must come without the server waiting for 25 MB.
        var head = $"POST /api/runs HTTP/1.1\r\nHost: {_serve.Api}\r\nAuthorization: Bearer {_token}\r\n" +
                   $"Content-Type: application/json\r\nContent-Length: {25 << 20}\r\n\r\n";
        var (status, body) = await RawAsync(head, bodyBytes: 0, chunked: false);
        Assert.That(status, Is.EqualTo(413), body);
        Assert.That(body, Does.Contain("at most 1,048,576"));
        AssertCleanError(body);
        await AssertStillServingAsync();
    }

    [Test]
    public async Task Submit_OversizedChunked_Returns413()
    {
        var head = $"POST /api/runs HTTP/1.1\r\nHost: {_serve.Api}\r\nAuthorization: Bearer {_token}\r\n" +
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        var (status, body) = await RawAsync(head, bodyBytes: 3 << 20, chunked: true);
        Assert.That(status, Is.EqualTo(413), body);
        Assert.That(body, Does.Contain("larger than 1,048,576"));
        AssertCleanError(body);
        await AssertStillServingAsync();
    }

    /// <summary>One request over a plain socket: headers, then up to <paramref name="bodyBytes"/> zeros (as chunks when asked), then the answer.</summary>
    private async Task<(int Status, string Body)> RawAsync(string head, int bodyBytes, bool chunked)
    {
        var parts = _serve.Api.Split(':');
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(parts[0], int.Parse(parts[1]));
        var stream = tcp.GetStream();
        stream.ReadTimeout = 15_000;
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        var chunk = new byte[64 * 1024];
        try
        {
            for (var sent = 0; sent < bodyBytes; sent += chunk.Length)
            {
                if (chunked) await stream.WriteAsync(Encoding.ASCII.GetBytes($"{chunk.Length:X}\r\n"));
                await stream.WriteAsync(chunk);
                if (chunked) await stream.WriteAsync("\r\n"u8.ToArray());
                if (tcp.Available > 0) break; // the server has answered already
            }
        }
        catch (IOException)
        {
            // The server answered and closed while the body was still going out.
        }
        var answer = new MemoryStream();
        var buffer = new byte[8192];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            while (true)
            {
                var n = await stream.ReadAsync(buffer, timeout.Token);
                if (n == 0) break;
                answer.Write(buffer, 0, n);
                var text = Encoding.UTF8.GetString(answer.ToArray());
                var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (split >= 0 && text.EndsWith("\r\n0\r\n\r\n", StringComparison.Ordinal)) break; // the last chunk
                if (split >= 0 && System.Text.RegularExpressions.Regex.Match(text, @"Content-Length: (\d+)", System.Text.RegularExpressions.RegexOptions.IgnoreCase) is { Success: true } length
                    && Encoding.UTF8.GetByteCount(text[(split + 4)..]) >= int.Parse(length.Groups[1].Value))
                    break;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // Whatever arrived is the answer.
        }
        var all = Encoding.UTF8.GetString(answer.ToArray());
        Assert.That(all, Does.StartWith("HTTP/1.1 "), "an HTTP answer arrived");
        var end = all.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        // The answer may come in chunks: the JSON object is what lies between the first '{' and the last '}'.
        var body = end < 0 ? "" : all[(end + 4)..];
        if (body.IndexOf('{') is var open and >= 0 && body.LastIndexOf('}') is var close && close > open) body = body[open..(close + 1)];
        return (int.Parse(all.Substring(9, 3)), body);
    }
}
