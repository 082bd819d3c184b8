using Training.Shared.Data;

namespace Training.Tests.Data;

internal static class SampleDocuments
{
    /// <summary>Documents with every column filled and texts of varied length (some with non-ASCII characters).</summary>
    public static List<FineWebDocument> Make(int count, int seed = 1)
    {
        var random = new Random(seed);
        var words = new[] { "the", "jury", "said", "élection", "Atlanta", "naïve", "fees", "primary", "中文", "voters", "🙂" };
        var documents = new List<FineWebDocument>();
        for (var i = 0; i < count; i++)
        {
            var length = 1 + random.Next(60);
            var text = $"doc{i}: " + string.Join(' ', Enumerable.Range(0, length).Select(_ => words[random.Next(words.Length)]));
            documents.Add(new FineWebDocument(
                text, $"id-{i}", "CC-MAIN-2024-10", $"https://example.org/{i}", $"s3://bucket/file-{i}.warc.gz", "en",
                0.5 + i / 1000.0, length + 1, 2.5 + i / 100.0, 3));
        }

        return documents;
    }
}
