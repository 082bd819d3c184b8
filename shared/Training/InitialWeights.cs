using Training.Shared.Storage;
using static TorchSharp.torch;

namespace Training.Shared.Training;

/// <summary>
/// <c>model.init_from</c>: a trial starts from another trial's committed weights (not its optimizer state or data cursor).
/// The source is RUN/TRIAL (its newest verified checkpoint), RUN/TRIAL@STEP (that step's checkpoint, no fallback), or an
/// absolute path to a trial's checkpoints folder. Every parameter of the new model must be in the source with the same
/// shape; all mismatches are reported in one error. Tensors the new model has no use for (another objective's head) are
/// left out, and the description says how many.
/// </summary>
public static class InitialWeights
{
    /// <summary>Copies the source's weights into <paramref name="module"/>; returns where they came from, for the trial's record.</summary>
    /// <param name="runsRoot">The runs folder RUN/TRIAL names refer to (the folder holding this trial's run).</param>
    public static string Load(nn.Module module, string initFrom, string? runsRoot)
    {
        var (loaded, location, name) = LoadCommitted(initFrom, runsRoot, "model.init_from");
        var source = $"{location}/{loaded.Manifest.Id}/model.safetensors";
        var (tensors, _) = SafeTensors.Deserialize(loaded.Files["model.safetensors"], source);
        var unused = CopyMatching(module, tensors, $"model.init_from {initFrom} ({source})");
        var skipped = loaded.Skipped.Count > 0 ? $"; skipped {string.Join("; ", loaded.Skipped)}" : "";
        var left = unused > 0 ? $", {unused} tensor(s) the model does not use left out" : "";
        return $"{name}@{loaded.Manifest.Id}{left}{skipped}";
    }

    /// <summary>The verified checkpoint a source names (the step it asks for, else the newest that verifies), where its
    /// store is, and the source's short name; every problem is an InvalidDataException that starts with <paramref name="key"/>.</summary>
    public static (LoadedCheckpoint Checkpoint, string Location, string Name) LoadCommitted(string source, string? runsRoot, string key)
    {
        try
        {
            var (store, step, name) = Locate(source, runsRoot, key);
            var loaded = step is { } wanted
                ? store.LoadStepAsync(wanted).GetAwaiter().GetResult()
                : store.LoadLatestAsync().GetAwaiter().GetResult()
                  ?? throw new InvalidDataException($"no committed checkpoint under {store.Location}");
            return (loaded, store.Location, name);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(key, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{key} {source}: {e.Message}", e);
        }
    }

    /// <summary>Before any work: does the source name a committed checkpoint (the step, if one is named)? Null when it does,
    /// else why not. Hashes are verified when the trial loads it.</summary>
    public static string? Problem(string initFrom, string? runsRoot, string key = "model.init_from")
    {
        try
        {
            var (store, step, _) = Locate(initFrom, runsRoot, key);
            var committed = store.ListAsync().GetAwaiter().GetResult();
            if (committed.Count == 0) return $"{key} {initFrom}: no committed checkpoint under {store.Location}";
            if (step is { } wanted && committed.All(m => m.Step != wanted))
                return $"{key} {initFrom}: no checkpoint at step {wanted}; committed steps: {string.Join(", ", committed.Select(m => m.Step))}";
            return null;
        }
        catch (InvalidDataException e)
        {
            return e.Message;
        }
    }

    /// <summary>The checkpoint store a source names, the step it asks for (null: newest), and its short name.</summary>
    public static (CheckpointStore Store, long? Step, string Name) Locate(string initFrom, string? runsRoot, string key = "model.init_from")
    {
        if (initFrom.StartsWith("azure://", StringComparison.Ordinal)) return LocateInBlobStorage(initFrom, key);
        if (initFrom.StartsWith('/'))
        {
            var folder = Path.GetFullPath(initFrom.TrimEnd('/'));
            if (!Directory.Exists(folder))
                throw new InvalidDataException($"{key} {initFrom}: no such folder (give a trial's checkpoints folder)");
            return (new CheckpointStore(new LocalFolderBlobStore(Path.GetDirectoryName(folder)!), Path.GetFileName(folder)), null, folder);
        }
        var at = initFrom.IndexOf('@');
        var name = at < 0 ? initFrom : initFrom[..at];
        long? step = at < 0 ? null : long.Parse(initFrom[(at + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        var slash = name.IndexOf('/');
        var (run, trial) = (name[..slash], name[(slash + 1)..]);
        if (runsRoot is null)
            throw new InvalidDataException($"{key} {initFrom}: RUN/TRIAL needs the runs folder, and this trainer has none");
        var runFolder = Path.Combine(runsRoot, run);
        if (!Directory.Exists(Path.Combine(runFolder, "trials", trial)))
            throw new InvalidDataException($"{key} {initFrom}: no trial {trial} in run {run} (runs folder {runsRoot})");
        return (new CheckpointStore(new LocalFolderBlobStore(runFolder), $"trials/{trial}/checkpoints"), step, name);
    }

    /// <summary>A trial's checkpoints folder in blob storage, <c>azure://ACCOUNT/container/.../checkpoints[@STEP]</c>, read
    /// with this process's credentials; a malformed URI or missing credentials is the source's problem, not a crash.</summary>
    private static (CheckpointStore Store, long? Step, string Name) LocateInBlobStorage(string initFrom, string key)
    {
        var at = initFrom.LastIndexOf('@');
        var uri = at < 0 ? initFrom : initFrom[..at];
        long? step = at < 0 ? null : long.Parse(initFrom[(at + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            var location = BlobLocation.Parse(uri);
            if (location.Prefix.Length == 0)
                throw new ArgumentException($"'{location}' names a container, not a trial's checkpoints folder in it");
            var container = BlobStores.Open(BlobLocation.Parse($"azure://{location.Account}/{location.Container}"));
            return (new CheckpointStore(container, location.Prefix), step, location.ToString());
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{key} {initFrom}: {e.Message}", e);
        }
    }

    /// <summary>Copies every parameter from <paramref name="tensors"/> after checking all names and shapes; returns how
    /// many source tensors were not needed.</summary>
    public static int CopyMatching(nn.Module module, IReadOnlyList<HostTensor> tensors, string source)
    {
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var parameters = module.named_parameters().ToList();
        var problems = new List<string>();
        foreach (var (name, parameter) in parameters)
        {
            if (!byName.TryGetValue(name, out var saved)) problems.Add($"'{name}' [{Shape(parameter.shape)}] is not in the source");
            else if (!saved.Shape.SequenceEqual(parameter.shape))
                problems.Add($"'{name}' is [{Shape(saved.Shape)}] in the source, the model needs [{Shape(parameter.shape)}]");
        }
        if (problems.Count > 0)
            throw new InvalidDataException($"{source} does not fit this model ({problems.Count} of {parameters.Count} parameters): {string.Join("; ", problems)}");
        using (no_grad())
        {
            foreach (var (name, parameter) in parameters)
            {
                using var loaded = byName[name].ToTensor(parameter.device);
                parameter.copy_(loaded);
            }
        }
        return byName.Count - parameters.Count;
    }

    private static string Shape(IEnumerable<long> shape) => string.Join(",", shape);
}
