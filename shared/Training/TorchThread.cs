namespace Training.Shared.Training;

/// <summary>
/// Runs a function on a dedicated thread. TorchSharp's dispose scopes and grad mode are thread-local, so all
/// TorchSharp work of one trainer happens on the one thread this creates.
/// </summary>
public static class TorchThread
{
    public static Task<T> Run<T>(string name, Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                completion.SetResult(work());
            }
            catch (Exception e)
            {
                completion.SetException(e);
            }
        }, maxStackSize: 16 << 20)
        {
            Name = name,
            IsBackground = true,
        };
        thread.Start();
        return completion.Task;
    }
}
