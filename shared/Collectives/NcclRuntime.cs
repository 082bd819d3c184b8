using System.Runtime.InteropServices;

namespace Training.Shared.Collectives;

/// <summary>
/// libnccl and the CUDA runtime, loaded at run time so that machines without them still build, test and train on
/// CPU. Entry points are resolved once into function pointers; signatures follow nccl.h and cuda_runtime_api.h
/// (C enums are int, size_t is nuint, handles and streams are pointers).
/// </summary>
public sealed unsafe class NcclRuntime
{
    public static readonly IReadOnlyList<string> DefaultNcclLibraries = ["libnccl.so.2", "libnccl.so"];
    public static readonly IReadOnlyList<string> DefaultCudaRuntimeLibraries = ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"];

    /// <summary>ncclCommInitRankConfig and non-blocking communicators (what makes timeouts possible) arrived in NCCL 2.14.</summary>
    public const int MinimumVersionCode = 21400;

    // ncclResult_t
    internal const int NcclSuccess = 0;
    internal const int NcclInProgress = 7;
    // ncclRedOp_t, ncclDataType_t
    internal const int NcclSum = 0;
    internal const int NcclFloat32 = 7;
    internal const int NcclBfloat16 = 9;
    // cudaError_t, cudaMemcpyKind
    internal const int CudaSuccess = 0;
    internal const int CudaErrorNotReady = 600;
    internal const int CudaMemcpyHostToDevice = 1;
    internal const int CudaMemcpyDeviceToHost = 2;

    private static readonly Lazy<NcclRuntime> Shared = new(() => Load(DefaultNcclLibraries, DefaultCudaRuntimeLibraries), LazyThreadSafetyMode.PublicationOnly);

    // NCCL
    internal readonly delegate* unmanaged<int*, int> GetVersion;
    internal readonly delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
    internal readonly delegate* unmanaged<nint*, int, NcclUniqueId, int, NcclConfig*, int> CommInitRankConfig;
    internal readonly delegate* unmanaged<nint, int*, int> CommGetAsyncError;
    internal readonly delegate* unmanaged<nint, int> CommAbort;
    internal readonly delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> AllReduce;
    internal readonly delegate* unmanaged<int, byte*> GetErrorString;
    internal readonly delegate* unmanaged<nint, byte*> GetLastError;

    // CUDA runtime
    internal readonly delegate* unmanaged<int*, int> CudaGetDeviceCount;
    internal readonly delegate* unmanaged<int, int> CudaSetDevice;
    internal readonly delegate* unmanaged<nint*, int> CudaStreamCreate;
    internal readonly delegate* unmanaged<nint, int> CudaStreamDestroy;
    internal readonly delegate* unmanaged<nint, int> CudaStreamQuery;
    internal readonly delegate* unmanaged<nint*, nuint, int> CudaMalloc;
    internal readonly delegate* unmanaged<nint, int> CudaFree;
    internal readonly delegate* unmanaged<nint, nint, nuint, int, nint, int> CudaMemcpyAsync;
    internal readonly delegate* unmanaged<int, byte*> CudaGetErrorName;
    internal readonly delegate* unmanaged<int, byte*> CudaGetErrorString;

    private NcclRuntime(string ncclLibrary, nint nccl, string cudaLibrary, nint cuda)
    {
        NcclLibrary = ncclLibrary;
        CudaRuntimeLibrary = cudaLibrary;
        var missing = new List<string>();
        nint Nccl(string name) => Export(nccl, ncclLibrary, name, missing);
        nint Cuda(string name) => Export(cuda, cudaLibrary, name, missing);

        GetVersion = (delegate* unmanaged<int*, int>)Nccl("ncclGetVersion");
        GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Nccl("ncclGetUniqueId");
        CommInitRankConfig = (delegate* unmanaged<nint*, int, NcclUniqueId, int, NcclConfig*, int>)Nccl("ncclCommInitRankConfig");
        CommGetAsyncError = (delegate* unmanaged<nint, int*, int>)Nccl("ncclCommGetAsyncError");
        CommAbort = (delegate* unmanaged<nint, int>)Nccl("ncclCommAbort");
        AllReduce = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Nccl("ncclAllReduce");
        GetErrorString = (delegate* unmanaged<int, byte*>)Nccl("ncclGetErrorString");
        GetLastError = (delegate* unmanaged<nint, byte*>)Nccl("ncclGetLastError");

        CudaGetDeviceCount = (delegate* unmanaged<int*, int>)Cuda("cudaGetDeviceCount");
        CudaSetDevice = (delegate* unmanaged<int, int>)Cuda("cudaSetDevice");
        CudaStreamCreate = (delegate* unmanaged<nint*, int>)Cuda("cudaStreamCreate");
        CudaStreamDestroy = (delegate* unmanaged<nint, int>)Cuda("cudaStreamDestroy");
        CudaStreamQuery = (delegate* unmanaged<nint, int>)Cuda("cudaStreamQuery");
        CudaMalloc = (delegate* unmanaged<nint*, nuint, int>)Cuda("cudaMalloc");
        CudaFree = (delegate* unmanaged<nint, int>)Cuda("cudaFree");
        CudaMemcpyAsync = (delegate* unmanaged<nint, nint, nuint, int, nint, int>)Cuda("cudaMemcpyAsync");
        CudaGetErrorName = (delegate* unmanaged<int, byte*>)Cuda("cudaGetErrorName");
        CudaGetErrorString = (delegate* unmanaged<int, byte*>)Cuda("cudaGetErrorString");

        if (missing.Count > 0)
            throw new CollectiveUnavailableException(
                $"NCCL backend unavailable: {string.Join("; ", missing)}. The NCCL library must be NCCL 2.14 or newer and the " +
                $"CUDA runtime a real libcudart. {InstallHint}");

        int version;
        var result = GetVersion(&version);
        if (result != NcclSuccess)
            throw new CollectiveUnavailableException($"NCCL backend unavailable: ncclGetVersion in {ncclLibrary} failed with {ResultName(result)}. {InstallHint}");
        if (version < MinimumVersionCode)
            throw new CollectiveUnavailableException(
                $"NCCL backend unavailable: {ncclLibrary} is NCCL {DescribeVersion(version)}; non-blocking communicators (timeouts and abort) need 2.14 or newer. {InstallHint}");
        VersionCode = version;
    }

    internal const string InstallHint =
        "Install NCCL (the libnccl2 package from NVIDIA's CUDA repository, or `pip install nvidia-nccl-cu12` with its lib folder " +
        "on LD_LIBRARY_PATH) and the CUDA runtime (libcudart), or run the worker with --device cpu to use the TCP ring";

    /// <summary>The NCCL and CUDA runtime libraries found on the default names; throws <see cref="CollectiveUnavailableException"/> when absent.</summary>
    public static NcclRuntime Default => Shared.Value;

    public string NcclLibrary { get; }
    public string CudaRuntimeLibrary { get; }

    /// <summary>NCCL_VERSION_CODE of the loaded library, e.g. 22105 for 2.21.5.</summary>
    public int VersionCode { get; }

    public string Version => DescribeVersion(VersionCode);

    /// <summary>Loads the first loadable name of each list; the error names every name tried and what to install.</summary>
    public static NcclRuntime Load(IReadOnlyList<string> ncclLibraries, IReadOnlyList<string> cudaRuntimeLibraries)
    {
        ArgumentNullException.ThrowIfNull(ncclLibraries);
        ArgumentNullException.ThrowIfNull(cudaRuntimeLibraries);
        var problems = new List<string>();
        var nccl = LoadFirst(ncclLibraries, "NCCL", problems);
        var cuda = LoadFirst(cudaRuntimeLibraries, "the CUDA runtime", problems);
        if (nccl is null || cuda is null)
            throw new CollectiveUnavailableException($"NCCL backend unavailable: {string.Join("; ", problems)}. {InstallHint}");
        return new NcclRuntime(nccl.Value.Name, nccl.Value.Handle, cuda.Value.Name, cuda.Value.Handle);
    }

    internal string ResultName(int result)
    {
        var text = GetErrorString is null ? null : Marshal.PtrToStringUTF8((nint)GetErrorString(result));
        return $"ncclResult {result}" + (string.IsNullOrEmpty(text) ? "" : $" ({text})");
    }

    internal string LastError(nint comm)
    {
        var text = Marshal.PtrToStringUTF8((nint)GetLastError(comm));
        return string.IsNullOrWhiteSpace(text) ? "" : $": {text.Trim()}";
    }

    internal string CudaErrorName(int error) =>
        $"{Marshal.PtrToStringUTF8((nint)CudaGetErrorName(error))} ({Marshal.PtrToStringUTF8((nint)CudaGetErrorString(error))})";

    private static string DescribeVersion(int code) => code >= 10000
        ? $"{code / 10000}.{code / 100 % 100}.{code % 100}"
        : $"{code / 1000}.{code / 100 % 10}.{code % 100}";

    private static (string Name, nint Handle)? LoadFirst(IReadOnlyList<string> names, string what, List<string> problems)
    {
        var reasons = new List<string>();
        foreach (var name in names)
        {
            try
            {
                return (name, NativeLibrary.Load(name));
            }
            catch (DllNotFoundException e)
            {
                reasons.Add(LoaderReason(name, e.Message));
            }
            catch (BadImageFormatException e)
            {
                reasons.Add(LoaderReason(name, e.Message));
            }
        }
        problems.Add($"could not load {what} (tried {string.Join(", ", names)}; {string.Join("; ", reasons)})");
        return null;
    }

    private static nint Export(nint library, string libraryName, string name, List<string> missing)
    {
        if (NativeLibrary.TryGetExport(library, name, out var address)) return address;
        missing.Add($"{libraryName} does not export {name}");
        return 0;
    }

    /// <summary>.NET puts the loader's own words (dlerror) after a generic first line; those are what help.</summary>
    private static string LoaderReason(string name, string message)
    {
        var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var detail = lines.Length > 1 ? string.Join(" ", lines.Skip(1)) : lines.FirstOrDefault() ?? "not loadable";
        return detail.StartsWith(name, StringComparison.Ordinal) ? detail : $"{name}: {detail}";
    }
}

/// <summary>ncclUniqueId: 128 opaque bytes (NCCL_UNIQUE_ID_BYTES), passed by value to ncclCommInitRankConfig.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NcclUniqueId
{
    public const int Bytes = 128;
    public fixed byte Internal[Bytes];
}

/// <summary>
/// ncclConfig_t as NCCL 2.14 declared it (size, magic, version, blocking). Newer NCCL copies only <see cref="Size"/>
/// bytes and, for version 2.14, takes its defaults for every field added since, so this layout stays valid.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NcclConfig
{
    public const uint ApiMagic = 0xcafebeef;
    public const uint Version21400 = 21400;

    public nuint Size;
    public uint Magic;
    public uint Version;
    public int Blocking;

    public static unsafe NcclConfig NonBlocking() => new()
    {
        Size = (nuint)sizeof(NcclConfig),
        Magic = ApiMagic,
        Version = Version21400,
        Blocking = 0,
    };
}
