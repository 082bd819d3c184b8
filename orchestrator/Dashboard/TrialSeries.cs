using System.Text.Json;
using Training.Orchestrator.State;

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
/// A trial's events (its metrics log in the run-state store) folded into columns, read incrementally: each refresh
/// reads only the events committed since the last one, so a live trial costs its new events, not its whole log.
/// </summary>
public sealed class TrialSeries
{
    private readonly object _gate = new();
    private readonly Func<long, IReadOnlyList<StoredEvent>> _readAfter;
    private long _lastSequence;
    private DateTimeOffset? _origin;

    /// <param name="readAfter">The trial's events after a sequence number, oldest first.</param>
    public TrialSeries(Func<long, IReadOnlyList<StoredEvent>> readAfter) => _readAfter = readAfter;

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
    /// <summary>Task data: the share of held-out prompts generated exactly (NaN for evaluations without it).</summary>
    public List<float> EvalExactMatch { get; } = [];

    public List<TrialAttempt> Attempts { get; } = [];
    public List<CheckpointEvent> Checkpoints { get; } = [];
    public List<WarningEvent> Warnings { get; } = [];

    private (long Sequence, SeriesSummary Summary)? _summary;

    /// <summary>What the trials table shows of this series, computed once per fold (a page of 500 finished trials then
    /// reads 500 cached summaries instead of walking every column).</summary>
    public SeriesSummary Summary
    {
        get
        {
            lock (_gate)
            {
                if (_summary is { } cached && cached.Sequence == _lastSequence) return cached.Summary;
                var summary = new SeriesSummary(Attempts.Count, Attempts.Sum(a => a.Seconds), ColumnSummary.Of(Loss),
                    ColumnSummary.Of(EvalLoss), ColumnSummary.Of(TokensPerSecond), ColumnSummary.Of(EvalExactMatch));
                _summary = (_lastSequence, summary);
                return summary;
            }
        }
    }

    /// <summary>The sequence number of the last event folded in.</summary>
    public long LastSequence => _lastSequence;

    /// <summary>The lock readers hold while they copy columns out (a refresh appends under it).</summary>
    public object Gate => _gate;

    /// <summary>Folds in whatever was committed since the last call.</summary>
    public void Refresh()
    {
        lock (_gate)
        {
            var events = _readAfter(_lastSequence);
            if (events.Count == 0) return;
            foreach (var e in events) FoldLine(System.Text.Encoding.UTF8.GetBytes(e.Body));
            _lastSequence = events[^1].Sequence;
        }
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
                    EvalExactMatch.Add(Num(e, "exact_match"));
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
}

/// <summary>The finite values of a column: null when it has none.</summary>
public sealed record ColumnSummary(double? Min, double? Max, double? Mean, double? Last)
{
    public static ColumnSummary Of(List<float> values)
    {
        var (min, max, sum, count, last) = (double.PositiveInfinity, double.NegativeInfinity, 0.0, 0, double.NaN);
        foreach (var v in values)
        {
            if (!float.IsFinite(v)) continue;
            (min, max, sum, count, last) = (Math.Min(min, v), Math.Max(max, v), sum + v, count + 1, v);
        }
        return count == 0 ? new ColumnSummary(null, null, null, null) : new ColumnSummary(min, max, sum / count, last);
    }
}

/// <summary>A trial's series as the trials table shows it.</summary>
public sealed record SeriesSummary(int Attempts, double ComputeSeconds, ColumnSummary Loss, ColumnSummary EvalLoss,
    ColumnSummary TokensPerSecond, ColumnSummary ExactMatch);
