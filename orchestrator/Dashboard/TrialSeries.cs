using System.Text;
using System.Text.Json;

namespace Training.Orchestrator.Dashboard;

/// <summary>One attempt of a trial: from a <c>start</c> event to its <c>finish</c> (or the last event seen).</summary>
public sealed class TrialAttempt
{
    public int Number { get; init; }
    public long StartStep { get; init; }
    public string? ResumedFrom { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset LastEventAt { get; set; }
    public string? Outcome { get; set; }
    public long? EndStep { get; set; }
    public string? Error { get; set; }
    public double Seconds => (LastEventAt - StartedAt).TotalSeconds;
}

public sealed record CheckpointEvent(long Step, string Id, string? Location, DateTimeOffset Time);

public sealed record WarningEvent(long Step, string Message, DateTimeOffset Time);

/// <summary>
/// A trial's metrics.jsonl folded into columns, read incrementally: each refresh parses only the bytes appended since
/// the last one (up to the last complete line), so a live trial costs its new lines, not its whole log.
/// </summary>
public sealed class TrialSeries
{
    private readonly object _gate = new();
    private long _offset;
    private DateTimeOffset? _origin;

    public TrialSeries(string metricsPath) => MetricsPath = metricsPath;

    public string MetricsPath { get; }

    // Train steps (one entry per logged step line).
    public List<long> Steps { get; } = [];
    public List<float> StepTime { get; } = [];
    public List<float> Loss { get; } = [];
    public List<float> Accuracy { get; } = [];
    public List<float> LearningRate { get; } = [];
    public List<float> GradNorm { get; } = [];
    public List<float> TokensPerSecond { get; } = [];

    // Evaluations.
    public List<long> EvalSteps { get; } = [];
    public List<float> EvalTime { get; } = [];
    public List<float> EvalLoss { get; } = [];
    public List<float> EvalAccuracy { get; } = [];

    public List<TrialAttempt> Attempts { get; } = [];
    public List<CheckpointEvent> Checkpoints { get; } = [];
    public List<WarningEvent> Warnings { get; } = [];

    /// <summary>Bytes of metrics.jsonl folded in so far (the live-update signature uses it).</summary>
    public long Offset => _offset;

    /// <summary>The lock readers hold while they copy columns out (a refresh appends under it).</summary>
    public object Gate => _gate;

    /// <summary>Folds in whatever was appended to the file since the last call.</summary>
    public void Refresh()
    {
        lock (_gate)
        {
            FileStream stream;
            try
            {
                stream = new FileStream(MetricsPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
            }
            catch (FileNotFoundException) { return; }
            catch (DirectoryNotFoundException) { return; }
            using (stream)
            {
                // A shorter file was replaced (a trial submitted again under the same folder): read it from the start.
                if (stream.Length < _offset) Reset();
                if (stream.Length <= _offset) return;
                stream.Position = _offset;
                var buffer = new byte[Math.Min(stream.Length - _offset, 1 << 22)];
                var carried = 0;
                int read;
                while ((read = stream.Read(buffer, carried, buffer.Length - carried)) > 0)
                {
                    var filled = carried + read;
                    var lastNewline = Array.LastIndexOf(buffer, (byte)'\n', filled - 1);
                    if (lastNewline < 0)
                    {
                        // A line longer than the buffer: grow it (a half-written last line waits for its newline).
                        if (filled == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
                        carried = filled;
                        continue;
                    }
                    var start = 0;
                    for (var i = 0; i <= lastNewline; i++)
                    {
                        if (buffer[i] != (byte)'\n') continue;
                        if (i > start) FoldLine(buffer.AsMemory(start, i - start));
                        start = i + 1;
                    }
                    _offset += lastNewline + 1;
                    carried = filled - (lastNewline + 1);
                    Buffer.BlockCopy(buffer, lastNewline + 1, buffer, 0, carried);
                }
            }
        }
    }

    private void Reset()
    {
        _offset = 0;
        _origin = null;
        foreach (var column in new System.Collections.IList[] { Steps, StepTime, Loss, Accuracy, LearningRate, GradNorm, TokensPerSecond,
                     EvalSteps, EvalTime, EvalLoss, EvalAccuracy, Attempts, Checkpoints, Warnings })
            column.Clear();
    }

    private void FoldLine(ReadOnlyMemory<byte> line)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException)
        {
            return; // a damaged line is skipped, the rest of the log still shows
        }
        using (document)
        {
            var e = document.RootElement;
            if (e.ValueKind != JsonValueKind.Object) return;
            var type = Str(e, "type");
            var time = e.TryGetProperty("time", out var t) && t.TryGetDateTimeOffset(out var parsed) ? parsed : (DateTimeOffset?)null;
            _origin ??= time;
            var seconds = time is { } at && _origin is { } origin ? (float)(at - origin).TotalSeconds : float.NaN;
            if (time is { } now && Attempts.Count > 0) Attempts[^1].LastEventAt = now;
            switch (type)
            {
                case "step":
                    Steps.Add(Long(e, "step"));
                    StepTime.Add(seconds);
                    Loss.Add(Num(e, "loss"));
                    Accuracy.Add(Num(e, "accuracy"));
                    LearningRate.Add(Num(e, "lr"));
                    GradNorm.Add(Num(e, "grad_norm"));
                    TokensPerSecond.Add(Num(e, "tokens_per_second"));
                    break;
                case "eval":
                    EvalSteps.Add(Long(e, "step"));
                    EvalTime.Add(seconds);
                    EvalLoss.Add(Num(e, "loss"));
                    EvalAccuracy.Add(Num(e, "accuracy"));
                    break;
                case "start":
                    var at0 = time ?? DateTimeOffset.MinValue;
                    Attempts.Add(new TrialAttempt
                    {
                        Number = Attempts.Count + 1, StartStep = Long(e, "step"), ResumedFrom = Str(e, "resumed_from"),
                        StartedAt = at0, LastEventAt = at0,
                    });
                    break;
                case "finish" when Attempts.Count > 0:
                    Attempts[^1].Outcome = Str(e, "outcome");
                    Attempts[^1].EndStep = Long(e, "step");
                    Attempts[^1].Error = Str(e, "error");
                    break;
                case "checkpoint":
                    Checkpoints.Add(new CheckpointEvent(Long(e, "step"), Str(e, "id") ?? "", Str(e, "location"), time ?? DateTimeOffset.MinValue));
                    break;
                case "warning":
                    Warnings.Add(new WarningEvent(Long(e, "step"), Str(e, "message") ?? "", time ?? DateTimeOffset.MinValue));
                    break;
            }
        }
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static long Long(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : 0;

    private static float Num(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? (float)v.GetDouble() : float.NaN;

    /// <summary>The last <paramref name="lines"/> lines of the log as written (the trial page's log panel).</summary>
    public static IReadOnlyList<string> Tail(string path, int lines)
    {
        if (!File.Exists(path)) return [];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        // Read back from the end in blocks until enough newlines are seen: a long log is not read whole.
        var block = 64 * 1024;
        var position = stream.Length;
        var collected = new List<byte[]>();
        var newlines = 0;
        while (position > 0 && newlines <= lines)
        {
            var size = (int)Math.Min(block, position);
            position -= size;
            stream.Position = position;
            var chunk = new byte[size];
            stream.ReadExactly(chunk);
            newlines += chunk.Count(b => b == (byte)'\n');
            collected.Insert(0, chunk);
        }
        var text = Encoding.UTF8.GetString(collected.SelectMany(c => c).ToArray());
        var all = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return all.Length <= lines ? all : all[^lines..];
    }
}
