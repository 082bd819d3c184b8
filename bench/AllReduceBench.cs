using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Training.Shared.Collectives;

namespace Training.Bench;

/// <summary>
/// Ring all-reduce bus bandwidth against this machine's loopback TCP bandwidth, both measured in the same run.
/// busBW = bytes * 2(W-1)/W / time, as nccl-tests define it: the rate each rank's link carries, comparable across W.
/// All ranks run in this process on threads, over real sockets on 127.0.0.1, so they share the machine's cores.
/// </summary>
internal static class AllReduceBench
{
    private const int MiB = 1 << 20;
    private static readonly int[] Worlds = [2, 3, 4];
    private static readonly (int Bytes, int Iterations)[] Sizes = [(1 * MiB, 50), (16 * MiB, 10), (64 * MiB, 5)];

    private sealed record Row(int World, long Bytes, int Iterations, double SecondsPerOperation, double AlgorithmGBps, double BusGBps, double BusVsLoopback);

    public static void Run(string outDir)
    {
        var clock = Stopwatch.StartNew();
        // Other work on the machine moves these numbers; the 1-minute load average says how much there was.
        var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "unknown";
        var loopback = Enumerable.Range(0, 3).Max(_ => LoopbackBandwidth(TimeSpan.FromSeconds(1)));
        var rows = new List<Row>();
        foreach (var world in Worlds)
        {
            var groups = FormRing(world);
            try
            {
                foreach (var (bytes, iterations) in Sizes)
                {
                    var seconds = TimeAllReduce(groups, bytes, iterations);
                    var algorithm = bytes / seconds / 1e9;
                    var bus = algorithm * 2.0 * (world - 1) / world;
                    rows.Add(new Row(world, bytes, iterations, seconds, algorithm, bus, bus / loopback));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"all-reduce W={world} {bytes / MiB} MiB: {seconds * 1000:F1} ms, busBW {bus:F2} GB/s ({bus / loopback:P0} of loopback)"));
                }
            }
            finally
            {
                foreach (var group in groups) group.Dispose();
            }
        }

        var result = new
        {
            machine = new { cores = Environment.ProcessorCount, load_average_1min = load, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            reference = new { loopback_tcp_gbps = loopback, what = "one TCP socket pair on 127.0.0.1 streaming 1 MiB writes for 1 s, best of 3 (GB/s = 1e9 bytes/s)" },
            definition = "busBW = bytes * 2(W-1)/W / seconds per all-reduce (nccl-tests), best of 3 batches; float32 buffers; ranks are threads of one process on real loopback sockets",
            segment_bytes = TcpRing.SegmentBytes,
            allreduce = rows.Select(r => new
            {
                world = r.World, bytes = r.Bytes, iterations = r.Iterations, seconds_per_op = r.SecondsPerOperation,
                algbw_gbps = r.AlgorithmGBps, busbw_gbps = r.BusGBps, busbw_vs_loopback = r.BusVsLoopback,
            }),
            bench_seconds = clock.Elapsed.TotalSeconds,
        };
        File.WriteAllText(Path.Combine(outDir, "allreduce.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));

        var md = new StringBuilder()
            .AppendLine("# Ring all-reduce (TCP, CPU)")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores, load average {load} at the start. Reference: loopback TCP, one socket pair, **{loopback:F2} GB/s**, measured in the same run.")
            .AppendLine("busBW = bytes x 2(W-1)/W / time (nccl-tests), float32. All W ranks are threads of one process on 127.0.0.1 and share")
            .AppendLine("the cores: loopback TCP is kernel memcpy on both ends, so the reference link gets every core to itself while the ring drives")
            .AppendLine("W links at once (plus the additions) on the same cores. On a cluster every worker brings its own cores and NIC.")
            .AppendLine()
            .AppendLine("| ranks | size | time/op | algBW | busBW | busBW / loopback |")
            .AppendLine("|---|---|---|---|---|---|");
        foreach (var r in rows)
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.World} | {r.Bytes / MiB} MiB | {r.SecondsPerOperation * 1000:F1} ms | {r.AlgorithmGBps:F2} GB/s | {r.BusGBps:F2} GB/s | {r.BusVsLoopback:P0} |");
        File.WriteAllText(Path.Combine(outDir, "allreduce.md"), md.ToString());
        Console.WriteLine(md);
    }

    private static ICollectiveGroup[] FormRing(int world)
    {
        var listeners = Enumerable.Range(0, world).Select(_ => RingListener.Start()).ToArray();
        try
        {
            var endpoints = listeners.Select(l => l.Endpoint).ToArray();
            var joins = Enumerable.Range(0, world).Select(rank => Task.Factory.StartNew(
                () => TcpRing.Connect(listeners[rank], rank, endpoints, $"bench/w{world}", TimeSpan.FromSeconds(30)),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
            Task.WaitAll(joins);
            return joins.Select(j => j.Result).ToArray();
        }
        finally
        {
            foreach (var listener in listeners) listener.Dispose();
        }
    }

    /// <summary>Seconds per all-reduce: the best of three batches, each timed by its slowest rank (the machine is shared).</summary>
    private static double TimeAllReduce(ICollectiveGroup[] groups, int bytes, int iterations) =>
        Enumerable.Range(0, 3).Min(_ => TimeBatch(groups, bytes, iterations));

    /// <summary>One warm-up, then the slowest rank's average over <paramref name="iterations"/>.</summary>
    private static double TimeBatch(ICollectiveGroup[] groups, int bytes, int iterations)
    {
        var world = groups.Length;
        // Zeros: sums stay finite however often they repeat, and the adds cost what any floats cost.
        var buffers = Enumerable.Range(0, world).Select(_ => new byte[bytes]).ToArray();
        using var start = new Barrier(world);
        var ranks = Enumerable.Range(0, world).Select(rank => Task.Factory.StartNew(() =>
        {
            groups[rank].AllReduceSum(buffers[rank], ElementType.Float32);
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < iterations; i++) groups[rank].AllReduceSum(buffers[rank], ElementType.Float32);
            return clock.Elapsed.TotalSeconds;
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        Task.WaitAll(ranks);
        return ranks.Max(r => r.Result) / iterations;
    }

    /// <summary>GB/s through one loopback TCP connection: the ceiling for any one ring link on this machine.</summary>
    private static double LoopbackBandwidth(TimeSpan duration)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.Connect(listener.LocalEndPoint!);
        using var server = listener.Accept();

        var block = new byte[MiB];
        var stop = Stopwatch.StartNew();
        var sender = Task.Factory.StartNew(() =>
        {
            while (stop.Elapsed < duration) client.Send(block);
            client.Shutdown(SocketShutdown.Send);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        var received = 0L;
        var incoming = new byte[MiB];
        var clock = Stopwatch.StartNew();
        int read;
        while ((read = server.Receive(incoming)) > 0) received += read;
        var seconds = clock.Elapsed.TotalSeconds;
        sender.Wait();
        return received / seconds / 1e9;
    }
}
