using System.Text.Json;
using System.Text.Json.Serialization;
using Training.Orchestrator.State;

namespace Training.Tests.Support;

/// <summary>
/// What a run recorded, read from its run-state store the way the CLI reads it, for tests that drive real processes
/// (which write the store from another process while the test polls it).
/// </summary>
public static class RunState
{
    private static readonly JsonSerializerOptions StatusJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, StateLocation> Elsewhere = new();

    /// <summary>Reads of <paramref name="runsFolder"/> (and the run folders in it) go to <paramref name="state"/> (a test
    /// that runs serve with <c>--state postgres://...</c>).</summary>
    public static void Use(string runsFolder, StateLocation state) => Elsewhere[Path.GetFullPath(runsFolder)] = state;

    /// <summary>The runs of a runs folder, or of the runs folder above a run folder; opened each call (another process
    /// may be writing it).</summary>
    private static RunStore Open(string folder)
    {
        var full = Path.GetFullPath(folder);
        if (Elsewhere.TryGetValue(full, out var state)) return new RunStore(full, state);
        if (Elsewhere.TryGetValue(Path.GetDirectoryName(full)!, out var parentState)) return new RunStore(Path.GetDirectoryName(full)!, parentState);
        var root = File.Exists(Path.Combine(full, "state.db")) || !File.Exists(Path.Combine(Path.GetDirectoryName(full)!, "state.db"))
            ? full : Path.GetDirectoryName(full)!;
        return new RunStore(root);
    }

    /// <summary>The runs under <paramref name="folder"/> (a runs folder: all of them; a run folder: that one), by id.</summary>
    private static List<RunRecord> Runs(RunStore store, string folder)
    {
        var name = Path.GetFileName(Path.GetFullPath(folder));
        var runs = store.List().OrderBy(r => r.Id, StringComparer.Ordinal).ToList();
        return store.Root == Path.GetFullPath(folder) ? runs : runs.Where(r => r.Id == name).ToList();
    }

    /// <summary>The events of <paramref name="trialId"/> (else of the first trial, by run and trial id, that has any)
    /// under <paramref name="folder"/>, oldest first. Empty when nothing is recorded yet.</summary>
    public static List<JsonElement> Events(string folder, string? trialId = null)
    {
        using var store = Open(folder);
        foreach (var run in Runs(store, folder))
            foreach (var trial in run.Trials.Where(t => trialId is null || t.Id == trialId).OrderBy(t => t.Id, StringComparer.Ordinal))
            {
                var events = trial.Events();
                if (events.Count > 0) return events.Select(e => JsonDocument.Parse(e.Body).RootElement.Clone()).ToList();
            }
        return [];
    }

    /// <summary>The event lines of one trial exactly as stored (what <c>orchestrator logs</c> prints).</summary>
    public static List<string> EventLines(string folder, string trialId)
    {
        using var store = Open(folder);
        return Runs(store, folder).SelectMany(r => r.Trials.Where(t => t.Id == trialId)).SelectMany(t => t.Events()).Select(e => e.Body).ToList();
    }

    /// <summary>A trial's status as a JSON object (snake_case, as the API shows it); throws when there is none.</summary>
    public static JsonElement Status(string folder, string trialId)
    {
        using var store = Open(folder);
        var trial = Runs(store, folder).SelectMany(r => r.Trials.Where(t => t.Id == trialId)).FirstOrDefault()
            ?? throw new InvalidDataException($"no trial {trialId} under {folder}");
        return JsonSerializer.SerializeToElement(trial.ReadStatus(), StatusJson);
    }

    /// <summary>A trial's attempts, oldest first.</summary>
    public static IReadOnlyList<AttemptRecord> Attempts(string folder, string trialId)
    {
        using var store = Open(folder);
        return Runs(store, folder).SelectMany(r => r.Trials.Where(t => t.Id == trialId)).Select(t => t.Attempts()).FirstOrDefault() ?? [];
    }

    /// <summary>Whether a cancel of the run in <paramref name="runFolder"/> is requested and not cleared.</summary>
    public static bool CancelRequested(string runFolder)
    {
        using var store = Open(runFolder);
        return Runs(store, runFolder).Single().CancelRequested;
    }

    /// <summary>What was submitted for the run in <paramref name="runFolder"/>.</summary>
    public static RunManifest Manifest(string runFolder)
    {
        using var store = Open(runFolder);
        return Runs(store, runFolder).Single().Manifest;
    }

    /// <summary>How many step events a trial has recorded so far (0 before anything is).</summary>
    public static int Steps(string folder, string? trialId = null) => Events(folder, trialId).Count(e => e.GetProperty("type").GetString() == "step");
}
