using Training.Worker.Training;

namespace Training.Bench.Generation;

/// <summary>`make bench`'s generation part: run the default grid on a TorchSharp-owning thread and write the reports.</summary>
public static class GenerationBench
{
    public static async Task<GenerationBenchResult> RunAndWriteAsync(string outDir)
    {
        var settings = GenerationBenchSettings.Default(threads: Environment.ProcessorCount);
        var result = await TorchThread.Run("generation-bench", () => GenerationBenchmark.Run(settings, Console.WriteLine));
        GenerationReport.Write(result, outDir);
        Console.WriteLine($"generation: wrote generation.json, generation.md and generation.png to {outDir} ({result.WallSeconds:F0} s)");
        return result;
    }
}
