using Training.Shared.Training;

namespace Training.Bench.Generation;

/// <summary>`make bench`'s generation part: run the default grid on a TorchSharp-owning thread and write the reports.</summary>
public static class GenerationBench
{
    public static async Task<GenerationBenchResult> RunAndWriteAsync(string outDir)
    {
        // One intra-op thread: decoding at batch 1-8 is a chain of small ops that a second thread barely speeds up,
        // and when the cores are shared, OpenMP's spin-waiting makes small ops many times slower and the timings
        // erratic. Both models get the same thread, so their ratios are what this measures.
        var settings = GenerationBenchSettings.Default(threads: 1);
        var result = await TorchThread.Run("generation-bench", () => GenerationBenchmark.Run(settings, Console.WriteLine));
        GenerationReport.Write(result, outDir);
        Console.WriteLine($"generation: wrote generation.json, generation.md and generation.png to {outDir} ({result.WallSeconds:F0} s)");
        return result;
    }
}
