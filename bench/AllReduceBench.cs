using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Training.Bench.Support;
using Training.Shared.Collectives;

namespace Training.Bench;

/// <summary>
/// Ring all-reduce bus bandwidth against this machine's loopback TCP bandwidth, measured in alternation (A B A B) in one run.
/// busBW = bytes * 2(W-1)/W / time, as nccl-tests define it: the rate each rank's link carries, comparable across W.
/// All ranks run in this process on threads, over real sockets on 127.0.0.1, so they share the machine's cores.
/// </summary>
internal static class AllReduceBench
{
    private const int MiB = 1 << 20;
    private static readonly int[] Worlds = [2, 3, 4];
    private static readonly (int Bytes, int Iterations)[] Sizes = [(1 * MiB, 50), (16 * MiB, 10), (64 * MiB, 5)];

    private const int Pairs = 7;
    private static readonly TimeSpan LoopbackWindow = TimeSpan.FromSeconds(0.25);

    /// <summary>One ranks x size point: per pair, loopback GB/s (reference) then the ring's busBW (subject).</summary>
    private sealed record Row(int World, long Bytes, int Iterations, List<double> SecondsPerOperation, Interleaved Pairs)
    {
        public double MedianSeconds => Stats.Median(SecondsPerOperation);
        public double AlgorithmGBps => Bytes / MedianSeconds / 1e9;
        public double BusGBps => Stats.Median(Pairs.Subject);
        public double LoopbackGBps => Stats.Median(Pairs.Reference);
    }

    public static void Run(string outDir)
    {
        var clock = Stopwatch.StartNew();
        var loadAtStart = LoadAverage.Read();
        LoopbackBandwidth(LoopbackWindow); // untimed: the first connection pays for JIT and socket set-up
        var rows = new List<Row>();
        foreach (var world in Worlds)
        {
            var groups = FormRing(world);
            try
            {
                foreach (var (bytes, iterations) in Sizes)
                {
                    var seconds = new List<double>();
                    // A B A B: loopback, then a batch of all-reduces; the ratio of each pair is taken before the next.
                    var pairs = Interleaved.Measure(Pairs, () => LoopbackBandwidth(LoopbackWindow), () =>
                    {
                        var s = TimeBatch(groups, bytes, iterations);
                        seconds.Add(s);
                        return bytes / s / 1e9 * 2.0 * (world - 1) / world;
                    }, warmup: 0);
                    var row = new Row(world, bytes, iterations, seconds, pairs);
                    rows.Add(row);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"all-reduce W={world} {bytes / MiB} MiB: {row.MedianSeconds * 1000:F1} ms, busBW {row.BusGBps:F2} GB/s, loopback {row.LoopbackGBps:F2} GB/s, busBW/loopback {pairs.Headline(Percent)}"));
                }
            }
            finally
            {
                foreach (var group in groups) group.Dispose();
            }
        }
        var loadAtEnd = LoadAverage.Read();

        var result = new
        {
            machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            load_average_start = loadAtStart.ToJson(),
            load_average_end = loadAtEnd.ToJson(),
            reference = new { what = $"one TCP socket pair on 127.0.0.1 streaming 1 MiB writes for {LoopbackWindow.TotalSeconds:F2} s (GB/s = 1e9 bytes/s), measured before each all-reduce batch" },
            definition = "busBW = bytes * 2(W-1)/W / seconds per all-reduce (nccl-tests), a batch timed by its slowest rank after one warm-up op; float32 buffers; ranks are threads of one process on real loopback sockets",
            segment_bytes = TcpRing.SegmentBytes,
            spread_limit = Interleaved.MaxSpread,
            allreduce = rows.Select(r => new
            {
                world = r.World, bytes = r.Bytes, iterations_per_batch = r.Iterations,
                median_seconds_per_op = r.MedianSeconds, median_algbw_gbps = r.AlgorithmGBps,
                median_busbw_gbps = r.BusGBps, median_loopback_gbps = r.LoopbackGBps,
                busbw_vs_loopback = r.Pairs.ToJson("interleaved: loopback, all-reduce batch, loopback, ... (ratio = busBW / loopback GB/s of the pair)"),
            }),
            bench_seconds = clock.Elapsed.TotalSeconds,
        };
        ResultFiles.WriteJson(outDir, "allreduce.json", result);

        var md = new StringBuilder()
            .AppendLine("# Ring all-reduce (TCP, CPU)")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores; load average (1/5/15 min) {loadAtStart} at the start, {loadAtEnd} at the end.")
            .AppendLine(CultureInfo.InvariantCulture, $"Reference: loopback TCP, one socket pair, measured before every batch of all-reduces ({Pairs} pairs per row, interleaved A B A B);")
            .AppendLine("the ratio is the median of the per-pair ratios busBW / loopback, with its range and interquartile range. A row whose")
            .AppendLine(CultureInfo.InvariantCulture, $"ratios spread more than {Interleaved.MaxSpread * 100:F0}% (max / min - 1) gets no headline: the machine changed too much under it.")
            .AppendLine("busBW = bytes x 2(W-1)/W / time (nccl-tests), float32. All W ranks are threads of one process on 127.0.0.1 and share")
            .AppendLine("the cores: loopback TCP is kernel memcpy on both ends, so the reference link gets every core to itself while the ring drives")
            .AppendLine("W links at once (plus the additions) on the same cores. On a cluster every worker brings its own cores and NIC.")
            .AppendLine()
            .AppendLine("| ranks | size | time/op | algBW | busBW | loopback | **busBW / loopback** (median) | per-pair ratios |")
            .AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.World} | {r.Bytes / MiB} MiB | {r.MedianSeconds * 1000:F1} ms | {r.AlgorithmGBps:F2} GB/s | {r.BusGBps:F2} GB/s | {r.LoopbackGBps:F2} GB/s | **{(r.Pairs.Stable ? Percent(r.Pairs.MedianRatio) : "no headline")}** | {r.Pairs.Detail(Percent)} |");
        ResultFiles.WriteText(outDir, "allreduce.md", md.ToString());
        Console.WriteLine(md);
    }

    private static string Percent(double v) => (v * 100).ToString("F0", CultureInfo.InvariantCulture) + "%";

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
