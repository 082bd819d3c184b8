namespace Training.Shared.Collectives;

/// <summary>A collective failed. Messages name the rank, the peer (where one is involved) and the operation.</summary>
public class CollectiveException : Exception
{
    public CollectiveException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A collective did not finish within its timeout (seconds, not NCCL's default of 30 minutes).</summary>
public sealed class CollectiveTimeoutException : CollectiveException
{
    public CollectiveTimeoutException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>The group was aborted (by <see cref="ICollectiveGroup.Abort"/>) while or before this rank used it.</summary>
public sealed class CollectiveAbortedException : CollectiveException
{
    public CollectiveAbortedException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A backend cannot run on this machine (for example libnccl.so.2 is missing); the message says what to install.</summary>
public sealed class CollectiveUnavailableException : CollectiveException
{
    public CollectiveUnavailableException(string message, Exception? inner = null) : base(message, inner) { }
}
