using YamlDotNet.RepresentationModel;

namespace Training.Shared.Spec;

/// <summary>
/// Reads <c>stages:</c>: each stage is the file's keys with the stage's own sections (and seed) put over them, plus its
/// own sweep and its <c>after:</c> list. Checks the graph (unknown names, cycles), binds every stage as a full spec
/// (an error in a stage names it), and checks every <c>init_from: {stage: ...}</c> against the stages the stage runs
/// after, transitively.
/// </summary>
internal static class StageReader
{
    public const string AfterKey = "after";

    private sealed record RawStage(string Name, SourcePosition Position, SourceDocument Own,
        List<(string Name, SourcePosition Position, string Label)> After, YamlMappingNode? Sweep, SourcePosition SweepPosition);

    /// <summary>The file-level spec (its first stage's, with <see cref="ExperimentSpec.Stages"/> set) and each stage's
    /// document (for the data check); the spec is null when anything is wrong.</summary>
    public static (ExperimentSpec? Spec, IReadOnlyList<SourceDocument> Documents) Read(SourceReader.Result read, string sourceFile, ErrorList errors)
    {
        var before = errors.Count;
        if (read.Sweep is not null || read.SweepPosition.IsKnown)
            errors.Add(read.SweepPosition, SpecSchema.SweepSection,
                "a file with stages: has no top-level sweep; each stage has its own (move this sweep into the stages it is for)");

        var raw = ReadStages(read.Stages!, errors);
        var names = raw.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var stage in raw)
        {
            foreach (var (after, position, label) in stage.After.Where(a => !names.Contains(a.Name)))
                errors.Add(position, label,
                    $"unknown stage \"{after}\"{Hint(after, names)}; stages in this file: {string.Join(", ", raw.Select(s => s.Name))}");
        }
        var ordered = Order(raw, errors);

        // Bind every stage as a full spec; the same mistake in several stages (a bad top-level key) is reported once.
        var problems = new Dictionary<SpecError, List<string>>();
        var bound = new Dictionary<string, ExperimentSpec>(StringComparer.Ordinal);
        var documents = new List<SourceDocument>();
        foreach (var stage in raw)
        {
            var stageErrors = new ErrorList(sourceFile);
            var document = read.Document.ForStage(stage.Own);
            documents.Add(document);
            var sweep = stage.Sweep is null ? null : SweepReader.Read(stage.Sweep, stage.SweepPosition, stageErrors);
            if (sweep is not null) document = document.WithSweptKeys(sweep.Keys);
            var spec = SpecBinder.Bind(document, sourceFile, stageErrors);
            if (spec is not null && (stage.Sweep is null || sweep is not null))
                bound[stage.Name] = spec with { Sweep = sweep is null ? null : sweep with { Base = document } };
            foreach (var error in stageErrors.Items)
            {
                if (!problems.TryGetValue(error, out var stages)) problems[error] = stages = [];
                stages.Add(stage.Name);
            }
        }
        foreach (var (error, stages) in problems)
            errors.Items.Add(error with { Message = $"{error.Message} ({(stages.Count == 1 ? "stage" : "stages")} {string.Join(", ", stages)})" });

        if (ordered is null || errors.Count > before || bound.Count != raw.Count) return (null, documents);

        var graph = new StagesSpec(new SpecList<StageSpec>(ordered.Select(s =>
            new StageSpec(s.Name, new SpecList<string>(s.After.Select(a => a.Name)), bound[s.Name], s.Position))));
        CheckStageReferences(graph, errors);
        if (errors.Count > before) return (null, documents);
        var first = graph.Stages[0].Spec;
        return (first with { Sweep = null, InitFromStage = null, TeacherFromStage = null, Stages = graph }, documents);
    }

    private static List<RawStage> ReadStages(YamlMappingNode node, ErrorList errors)
    {
        var stages = new List<RawStage>();
        var allowed = new[] { AfterKey, SpecSchema.SweepSection, "seed" }.Concat(SpecSchema.Sections).ToList();
        foreach (var (keyNode, valueNode) in node.Children)
        {
            var name = SourceReader.KeyName(keyNode, "stages.", errors);
            if (name is null) continue;
            var position = SourceReader.PositionOf(keyNode);
            if (!SpecSchema.IsName(name))
            {
                errors.Add(position, "stages." + name, $"\"{name}\" is not a valid stage name: expected a name matching [a-z0-9][a-z0-9-_]* (it is part of trial ids)");
                continue;
            }
            var own = new SourceDocument();
            var after = new List<(string, SourcePosition, string)>();
            YamlMappingNode? sweep = null;
            var sweepPosition = SourcePosition.Unknown;
            var label = "stages." + name;
            if (valueNode is YamlScalarNode empty && SourceReader.ScalarOf(empty).Text is null)
            {
                // `name:` alone: the file's keys as they are.
            }
            else if (valueNode is not YamlMappingNode mapping)
            {
                errors.Add(SourceReader.PositionOf(valueNode), label, "expected a mapping with keys: " + string.Join(", ", allowed));
                continue;
            }
            else
            {
                foreach (var (childKey, childValue) in mapping.Children)
                {
                    var leaf = SourceReader.KeyName(childKey, label + ".", errors);
                    if (leaf is null) continue;
                    if (leaf == AfterKey) after = ReadAfter(childValue, $"{label}.{AfterKey}", errors);
                    else if (leaf == SpecSchema.SweepSection)
                    {
                        sweepPosition = SourceReader.PositionOf(childKey);
                        if (childValue is YamlMappingNode sweepMapping) sweep = sweepMapping;
                        else errors.Add(SourceReader.PositionOf(childValue), $"{label}.sweep", "expected a mapping with grid, random and/or equal_flops");
                    }
                    else if (SpecSchema.Sections.Contains(leaf)) SourceReader.ReadSection(leaf, childKey, childValue, own, errors);
                    else if (leaf == "seed") own.Set(leaf, SourceReader.ToValue(childValue));
                    else
                        errors.Add(SourceReader.PositionOf(childKey), $"{label}.{leaf}",
                            $"unknown key \"{leaf}\"{Hint(leaf, allowed)} allowed keys in a stage: {string.Join(", ", allowed)}" +
                            (leaf == "name" ? " (the experiment's name is the file's; the stage's name is its key)" : ""));
                }
            }
            stages.Add(new RawStage(name, position, own, after, sweep, sweepPosition));
        }
        return stages;
    }

    /// <summary>after: one stage name or a list of them.</summary>
    private static List<(string, SourcePosition, string)> ReadAfter(YamlNode node, string label, ErrorList errors)
    {
        var items = node is YamlSequenceNode sequence ? sequence.Children.ToList() : [node];
        var names = new List<(string, SourcePosition, string)>();
        for (var i = 0; i < items.Count; i++)
        {
            var itemLabel = node is YamlSequenceNode ? $"{label}[{i}]" : label;
            if (items[i] is YamlScalarNode scalar && SourceReader.ScalarOf(scalar).Text is { } text && SpecSchema.IsName(text))
                names.Add((text, SourceReader.PositionOf(scalar), itemLabel));
            else
                errors.Add(SourceReader.PositionOf(items[i]), itemLabel, "expected a stage name or a list of stage names");
        }
        return names;
    }

    /// <summary>Every stage after the stages it names (file order where the graph leaves a choice); null, with an error
    /// naming the loop, when the stages form a cycle.</summary>
    private static List<RawStage>? Order(List<RawStage> stages, ErrorList errors)
    {
        var known = stages.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var placed = new HashSet<string>(StringComparer.Ordinal);
        var ordered = new List<RawStage>();
        while (ordered.Count < stages.Count)
        {
            var next = stages.FirstOrDefault(s => !placed.Contains(s.Name) && s.After.All(a => placed.Contains(a.Name) || !known.Contains(a.Name)));
            if (next is null) break;
            ordered.Add(next);
            placed.Add(next.Name);
        }
        if (ordered.Count == stages.Count) return ordered;

        // Walk back from a stage that could not be placed until a stage repeats: that is the loop.
        var byName = stages.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var path = new List<string>();
        var current = stages.First(s => !placed.Contains(s.Name));
        while (!path.Contains(current.Name))
        {
            path.Add(current.Name);
            current = byName[current.After.First(a => known.Contains(a.Name) && !placed.Contains(a.Name)).Name];
        }
        var loop = path[path.IndexOf(current.Name)..];
        // In run order each stage runs after the one before it; the loop is reported at the after: entry of the stage
        // written last in the file, and read from the stage after it (a -> b -> c -> a: c, written last, closes it).
        var runOrder = Enumerable.Reverse(loop).ToList();
        var closer = runOrder.MaxBy(name => stages.FindIndex(s => s.Name == name))!;
        var shift = runOrder.IndexOf(closer) + 1;
        runOrder = runOrder.Skip(shift).Concat(runOrder.Take(shift)).ToList();
        var runsAfter = runOrder.Count == 1 ? runOrder[0] : runOrder[^2];
        var entry = byName[closer].After.First(a => a.Name == runsAfter);
        errors.Add(entry.Position, entry.Label,
            $"the stages form a cycle: {string.Join(" -> ", runOrder.Append(runOrder[0]))} (each runs after the one before it, so none can start)");
        return null;
    }

    /// <summary>init_from / distill.teacher: {stage: X} must name a stage this stage runs after (directly or through
    /// others); best-eval needs eval losses to compare.</summary>
    private static void CheckStageReferences(StagesSpec graph, ErrorList errors)
    {
        foreach (var stage in graph.Stages)
            foreach (var reference in new[] { stage.Spec.InitFromStage, stage.Spec.TeacherFromStage }.OfType<StageReference>())
                CheckStageReference(graph, stage, reference, errors);
    }

    private static void CheckStageReference(StagesSpec graph, StageSpec stage, StageReference reference, ErrorList errors)
    {
        var key = reference.Key + ".stage";
        var takes = reference.Key == "distill.teacher" ? "its teacher" : "its weights";
        if (!graph.Stages.Any(s => s.Name == reference.Stage))
        {
            errors.Add(reference.Position, key, $"unknown stage \"{reference.Stage}\"{Hint(reference.Stage, graph.Stages.Select(s => s.Name).ToList())}; " +
                                                $"stages in this file: {string.Join(", ", graph.Stages.Select(s => s.Name))} (stage {stage.Name})");
            return;
        }
        var upstream = graph.Upstream(stage.Name);
        if (!upstream.Contains(reference.Stage))
        {
            var runsAfter = stage.After.Count == 0 ? "no stage" : string.Join(", ", stage.After);
            errors.Add(reference.Position, key, reference.Stage == stage.Name
                ? $"stage {stage.Name} cannot start from its own trials; name an earlier stage"
                : $"stage {stage.Name} takes {takes} from stage {reference.Stage} but does not run after it " +
                  $"(after: {runsAfter}); add {reference.Stage} to stages.{stage.Name}.after");
            return;
        }
        var source = graph[reference.Stage].Spec;
        if (reference.Key == "distill.teacher" && TeacherArchitectureProblem(stage.Spec, source, reference.Stage) is { } problem)
            errors.Add(reference.Position, key, $"{problem} (stage {stage.Name})");
        if (reference.Pick.Kind == StagePickKind.BestEval && source.Data.Eval.Count == 0)
            errors.Add(reference.PickPosition, reference.Key + ".pick",
                $"best-eval compares final eval losses, but stage {reference.Stage} has no data.eval; give it eval data, or pick last or a trial index (stage {stage.Name})");
    }

    /// <summary>A decoder-only teacher unless distill.relations names an encoder-decoder one: the stage must train that kind.</summary>
    private static string? TeacherArchitectureProblem(ExperimentSpec student, ExperimentSpec teacher, string teacherStage)
    {
        var trains = SpecWriter.NameOf(teacher.Model.Architecture);
        if (student.Distill.EncoderDecoderTeacher)
            return teacher.Model.Architecture == Models.ModelArchitecture.EncoderDecoder ? null
                : $"distill.relations {Objectives.DistillRelationsNames.YamlName(student.Distill.Relations)} distils from an encoder-decoder teacher, and stage {teacherStage} trains {trains}";
        return teacher.Model.Architecture == Models.ModelArchitecture.EncoderDecoder
            ? $"stage {teacherStage} trains an encoder-decoder: set distill.relations (logits, miniend-d or miniend-e) to distil from one"
            : null;
    }

    private static string Hint(string written, IEnumerable<string> allowed) =>
        Suggest.Nearest(written, allowed.ToList(), 1) is { Count: > 0 } nearest ? $"; did you mean \"{nearest[0]}\"?" : "";
}
