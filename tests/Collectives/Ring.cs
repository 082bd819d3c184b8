using Training.Shared.Collectives;

namespace Training.Tests.Collectives;

/// <summary>Real rings on 127.0.0.1 with one thread per rank, as the workers would run them in separate processes.</summary>
internal static class Ring
{
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(20);

    public static ICollectiveGroup[] Form(int world, string token = "t000/g1", TimeSpan? operationTimeout = null, Action<string>? log = null)
    {
        var listeners = Enumerable.Range(0, world).Select(_ => RingListener.Start()).ToArray();
        try
        {
            return Form(listeners, token, operationTimeout, log);
        }
        finally
        {
            foreach (var listener in listeners) listener.Dispose();
        }
    }

    public static ICollectiveGroup[] Form(RingListener[] listeners, string token, TimeSpan? operationTimeout = null, Action<string>? log = null)
    {
        var endpoints = listeners.Select(l => l.Endpoint).ToArray();
        return OnEveryRank(listeners.Length, rank =>
            TcpRing.Connect(listeners[rank], rank, endpoints, token, ConnectTimeout, operationTimeout: operationTimeout ?? ConnectTimeout, log: log));
    }

    /// <summary>Runs <paramref name="work"/> for every rank at once, each on its own thread; rethrows the first failure.</summary>
    public static T[] OnEveryRank<T>(int world, Func<int, T> work)
    {
        var tasks = Enumerable.Range(0, world)
            .Select(rank => Task.Factory.StartNew(() => work(rank), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))
            .ToArray();
        try
        {
            Task.WaitAll(tasks);
        }
        catch (AggregateException e)
        {
            throw e.Flatten().InnerExceptions.First();
        }
        return tasks.Select(t => t.Result).ToArray();
    }

    public static void OnEveryRank(int world, Action<int> work) => OnEveryRank(world, rank =>
    {
        work(rank);
        return 0;
    });

    /// <summary>Runs <paramref name="work"/> on its own thread and returns what it threw (null if nothing) and when.</summary>
    public static Task<(Exception? Error, TimeSpan Elapsed)> Start(Action work) => Task.Factory.StartNew(() =>
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            work();
            return ((Exception?)null, clock.Elapsed);
        }
        catch (Exception e)
        {
            return (e, clock.Elapsed);
        }
    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    public static void DisposeAll(IEnumerable<ICollectiveGroup> groups)
    {
        foreach (var group in groups) group.Dispose();
    }
}
