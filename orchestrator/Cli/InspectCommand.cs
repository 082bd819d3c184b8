using System.Globalization;
using Spectre.Console;
using Training.Shared.Objectives;
using Training.Shared.Training;
using Training.Shared.Models;
using Training.Shared.Spec;

namespace Training.Orchestrator.Cli;

/// <summary>
/// <c>orchestrator inspect EXPERIMENT.yaml</c>: per trial, the architecture, parameter counts (total, non-embedding,
/// embedding, encoder and decoder stacks) and training FLOPs per token, computed from the spec before anything runs.
/// </summary>
public static class InspectCommand
{
    public static int Run(string path, bool json = false)
    {
        var spec = ExperimentLoader.Load(path);
        var trials = TrialComponents.Expand(spec);
        var budgets = trials.Select(t => TrainingBudget.For(t.Spec)).ToList();
        if (json)
        {
            ReadCommands.PrintJson(ReadCommands.Inspect(spec, trials, budgets));
            return 0;
        }
        // A piped table keeps one line per trial however many columns the sweep adds.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 320);

        Console.WriteLine($"{spec.SourceFile}: {trials.Count} trial(s); nothing is trained: counts come from the specs");
        foreach (var line in StageGraph(spec, trials)) Console.WriteLine(line);
        if (spec.Sweep?.EqualFlops is { } equalFlops)
            Console.WriteLine($"equal FLOPs: each variant's {equalFlops.SizeBy} is chosen so its training FLOPs per token come closest to its reference's " +
                              "(column \"vs ref\" = variant / reference)");
        AnsiConsole.Write(Table(trials, budgets));
        Console.WriteLine("params exact, non-emb to decoder in millions; embedding = token (and position) embeddings and an untied head; FLOPs per token read " +
                          "(encoder + decoder), 6 x matmul weights + attention; total = per token x tokens/example x global_batch x steps");
        return 0;
    }

    /// <summary>
    /// The stages of a file with <c>stages:</c>: the graph as edges (a -> b: b runs after a), then each stage in run
    /// order with its trials, what it runs after and where its weights come from. Empty for a file without stages.
    /// </summary>
    public static IReadOnlyList<string> StageGraph(ExperimentSpec spec, IReadOnlyList<Trial> trials)
    {
        if (spec.Stages is not { } stages) return [];
        var lines = new List<string> { $"stage graph ({stages.Stages.Count} stages; a -> b: b starts when a has completed):" };
        var edges = stages.Stages.SelectMany(s => s.After.Select(a => $"  {a} -> {s.Name}")).ToList();
        lines.AddRange(edges);
        foreach (var alone in stages.Stages.Where(s => s.After.Count == 0 && !stages.Stages.Any(o => o.After.Contains(s.Name))))
            lines.Add($"  {alone.Name}");
        lines.Add("stages in run order:");
        var width = stages.Stages.Max(s => s.Name.Length);
        foreach (var stage in stages.Stages)
        {
            var own = trials.Where(t => t.Stage == stage.Name).ToList();
            var line = $"  {stage.Name.PadRight(width)}  {own.Count} trial(s): {string.Join(", ", own.Select(t => t.Id))}";
            if (stage.After.Count > 0) line += $"; after {string.Join(", ", stage.After)}";
            if (own.FirstOrDefault()?.InitFromStage is { } source)
                line += $"; weights from stage {source.Stage}, {Describe(source.Pick, trials.Where(t => t.Stage == source.Stage).ToList())}";
            lines.Add(line);
        }
        return lines;
    }

    /// <summary>What a pick will choose, as far as it is known before any work.</summary>
    private static string Describe(StagePick pick, IReadOnlyList<Trial> stageTrials) => pick.Kind switch
    {
        StagePickKind.BestEval => "pick best-eval (its completed trial with the lowest final eval loss)",
        StagePickKind.Last => $"pick last ({stageTrials[^1].Id})",
        _ => $"pick {pick.Index} ({stageTrials[pick.Index].Id})",
    };

    public static Table Table(IReadOnlyList<Trial> trials, IReadOnlyList<TrainingBudget> budgets)
    {
        var (columns, rows) = Cells(trials, budgets);
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var column in columns) table.AddColumn(Markup.Escape(column));
        foreach (var row in rows) table.AddRow(row.Select(Markup.Escape).ToArray());
        return table;
    }

    /// <summary>The inspect table as plain text cells (the terminal table and the dashboard both show these).</summary>
    public static (IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows) Cells(IReadOnlyList<Trial> trials, IReadOnlyList<TrainingBudget> budgets)
    {
        var sweepKeys = trials.SelectMany(t => t.Overrides.Keys).Distinct().ToList();
        var columns = new List<string> { "trial" };
        var staged = trials.Any(t => t.Stage is not null);
        if (staged) columns.AddRange(["stage", "weights from"]);
        columns.AddRange(sweepKeys);
        // A swept arch already has its column.
        var archColumn = !sweepKeys.Contains("model.arch");
        if (archColumn) columns.Add("arch");
        columns.AddRange(["objective", "layers", "d_model", "vocab", "params", "non-emb", "embedding", "encoder", "decoder",
            "tokens/ex", "FLOPs/token"]);
        var compared = trials.Any(t => t.FlopsReference is not null);
        if (compared) columns.Add("vs ref");
        columns.Add("train FLOPs");
        var rows = new List<IReadOnlyList<string>>();
        for (var i = 0; i < trials.Count; i++)
        {
            var (trial, budget) = (trials[i], budgets[i]);
            var model = trial.Spec.Model;
            var p = budget.Parameters;
            var cells = new List<string> { trial.Id };
            if (staged) cells.AddRange([trial.Stage ?? "-", trial.InitFromStage is { } source ? $"{source.Stage} ({source.Pick})" : trial.Spec.Model.InitFrom ?? "random"]);
            cells.AddRange(sweepKeys.Select(k => trial.Overrides.TryGetValue(k, out var v) ? v : "-"));
            if (archColumn) cells.Add(SpecNameOf(model.Architecture));
            cells.AddRange([
                SpecNameOf(trial.Spec.Objective.Kind),
                model.Architecture == ModelArchitecture.EncoderDecoder ? $"{model.EncoderLayers}+{model.DecoderLayers}" : Integer(model.Layers),
                Integer(model.DModel),
                Integer(budget.Config.VocabSize),
                Integer(p.Total), Millions(p.NonEmbedding), Millions(p.Embedding), Millions(p.Encoder), Millions(p.Decoder),
                budget.EncoderTokens > 0 && budget.DecoderTokens > 0 ? $"{budget.EncoderTokens}+{budget.DecoderTokens}" : Integer(budget.TokensPerExample),
                Flops(budget.FlopsPerToken),
            ]);
            if (compared)
                cells.Add(trial.FlopsReference is { } reference
                    ? (budget.FlopsPerToken / TrainingBudget.For(reference).FlopsPerToken).ToString("0.000", CultureInfo.InvariantCulture)
                    : "-");
            cells.Add(Flops(budget.TotalFlops));
            rows.Add(cells);
        }
        return (columns, rows);
    }

    private static string SpecNameOf(ModelArchitecture arch) => SpecWriter.NameOf(arch);
    private static string SpecNameOf(ObjectiveKind kind) => SpecWriter.NameOf(kind);

    public static string Integer(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>Millions with three decimals; "-" for a part the model does not have.</summary>
    public static string Millions(long count) => count == 0 ? "-" : (count / 1e6).ToString("0.000", CultureInfo.InvariantCulture);

    /// <summary>1.23 M, 4.56 G, 7.89 T.</summary>
    public static string Flops(double flops)
    {
        var (scale, unit) = flops switch
        {
            >= 1e15 => (1e15, "P"),
            >= 1e12 => (1e12, "T"),
            >= 1e9 => (1e9, "G"),
            >= 1e6 => (1e6, "M"),
            >= 1e3 => (1e3, "k"),
            _ => (1.0, ""),
        };
        return (flops / scale).ToString("0.00", CultureInfo.InvariantCulture) + " " + unit;
    }
}
