namespace Training.Shared.Data;

/// <summary>
/// Parquet.Net is async-only while the data API is synchronous (it runs on a trainer's own thread).
/// Where a synchronization context is present, the work hops to the thread pool so blocking cannot deadlock.
/// </summary>
internal static class SyncOverAsync
{
    public static T Run<T>(Func<Task<T>> work) =>
        SynchronizationContext.Current is null
            ? work().GetAwaiter().GetResult()
            : Task.Run(work).GetAwaiter().GetResult();

    public static void Run(Func<Task> work)
    {
        if (SynchronizationContext.Current is null) work().GetAwaiter().GetResult();
        else Task.Run(work).GetAwaiter().GetResult();
    }
}
