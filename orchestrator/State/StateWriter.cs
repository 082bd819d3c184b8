namespace Training.Orchestrator.State;

/// <summary>
/// Writes run state in batches on its own thread, so the coordinator's actor never waits for the database: writes
/// queue in order and a batch commits as one transaction every <see cref="Interval"/>, or at once after an urgent one
/// (a start, a finish, a checkpoint commit). Within a trial only its latest status is written. Until a status is
/// committed this process reads it back from here (<see cref="PendingStatus"/>), so a reader never sees an older one.
/// A batch that fails (the database is down) is retried, in order, with backoff; nothing queued is dropped.
/// </summary>
public sealed class StateWriter : IDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    private readonly IRunStateStore _store;
    private readonly object _gate = new();
    private readonly SemaphoreSlim _wake = new(0);
    private List<StateWrite> _queued = [];
    private readonly Dictionary<(string, string), TrialStatus> _queuedStatus = [];
    private readonly Dictionary<(string, string), TrialStatus> _inFlightStatus = [];

    /// <summary>Statuses of live trials (pending, running) this process committed last: the coordinator folds every
    /// event into its trial's status, and reading it back from here instead of the database keeps thousands of trials
    /// from queueing on one lock behind a query each. A finished trial's is dropped (the database has it).</summary>
    private readonly Dictionary<(string, string), TrialStatus> _committedStatus = [];
    private Thread? _thread;
    private bool _stopping;
    private bool _applying;
    private int _failures;

    public StateWriter(IRunStateStore store) => _store = store;

    /// <summary>Why the last batch failed, while the store is failing (null once a batch commits again).</summary>
    public string? LastError { get; private set; }

    public void Write(StateWrite write, bool urgent = false)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            if (write is WriteStatus status) _queuedStatus[(status.RunId, status.TrialId)] = status.Status;
            else _queued.Add(write);
            _thread ??= StartThread();
        }
        if (urgent) _wake.Release();
    }

    /// <summary>The status written here and not yet committed, if any.</summary>
    public TrialStatus? PendingStatus(string runId, string trialId)
    {
        lock (_gate)
            return _queuedStatus.GetValueOrDefault((runId, trialId)) ?? _inFlightStatus.GetValueOrDefault((runId, trialId));
    }

    /// <summary>The trial's status as this process last wrote it, committed or not, while the trial is pending or
    /// running; null when this process has not written it or the trial has finished (read the database then).</summary>
    public TrialStatus? KnownStatus(string runId, string trialId)
    {
        lock (_gate)
            return _queuedStatus.GetValueOrDefault((runId, trialId)) ?? _inFlightStatus.GetValueOrDefault((runId, trialId))
                ?? _committedStatus.GetValueOrDefault((runId, trialId));
    }

    /// <summary>Commits everything written so far before returning (a test, or a program about to exit).</summary>
    /// <exception cref="TimeoutException">The store kept failing for <paramref name="timeout"/> (30 s by default).</exception>
    public void Flush(TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"run-state store {_store.Description}: queued changes did not commit ({LastError ?? "still writing"})");
            lock (_gate)
            {
                // A batch of events alone leaves nothing queued while it commits: wait for it too.
                if (_queued.Count == 0 && _queuedStatus.Count == 0 && _inFlightStatus.Count == 0 && !_applying) return;
                _thread ??= StartThread();
            }
            _wake.Release();
            Thread.Sleep(5);
        }
    }

    private Thread StartThread()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "run-state writer" };
        thread.Start();
        return thread;
    }

    private void Run()
    {
        while (true)
        {
            var delay = _failures == 0 ? Interval : TimeSpan.FromMilliseconds(Math.Min(5000, 200 * (1 << Math.Min(_failures, 5))));
            _wake.Wait(delay);
            List<StateWrite> batch;
            lock (_gate)
            {
                if (_queued.Count == 0 && _queuedStatus.Count == 0 && _inFlightStatus.Count == 0)
                {
                    if (_stopping) return;
                    continue;
                }
                // A retried batch keeps its place ahead of newer writes.
                foreach (var (key, status) in _queuedStatus) _inFlightStatus[key] = status;
                _queuedStatus.Clear();
                batch = _queued;
                _queued = [];
                batch.AddRange(_inFlightStatus.Select(kv => new WriteStatus(kv.Key.Item1, kv.Value)));
                _applying = true;
            }
            try
            {
                _store.Apply(batch);
                _failures = 0;
                LastError = null;
                lock (_gate)
                {
                    foreach (var write in batch.OfType<WriteStatus>())
                    {
                        var key = (write.RunId, write.TrialId);
                        if (_inFlightStatus.TryGetValue(key, out var current) && ReferenceEquals(current, write.Status))
                            _inFlightStatus.Remove(key);
                        if (write.Status.State is TrialState.Pending or TrialState.Running) _committedStatus[key] = write.Status;
                        else _committedStatus.Remove(key);
                    }
                    _applying = false;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _failures++;
                LastError = e.Message;
                if (_failures == 1 || _failures % 20 == 0)
                    Console.Error.WriteLine($"run-state store {_store.Description}: writing {batch.Count} change(s) failed ({e.Message}); retrying");
                lock (_gate)
                {
                    var writes = batch.Where(w => w is not WriteStatus).ToList();
                    writes.AddRange(_queued);
                    _queued = writes;
                    _applying = false;
                }
            }
        }
    }

    /// <summary>Commits what is queued (retrying for a while if the store fails), then stops the thread.</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_gate)
        {
            if (_stopping) return;
            _stopping = true;
            thread = _thread;
        }
        if (thread is null) return;
        _wake.Release();
        if (!thread.Join(TimeSpan.FromSeconds(30)))
            Console.Error.WriteLine($"run-state store {_store.Description}: gave up waiting for queued changes to commit ({LastError})");
    }
}
