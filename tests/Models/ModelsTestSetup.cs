using NUnit.Framework;
using static TorchSharp.torch;

namespace Training.Tests.Models;

/// <summary>
/// Runs the model tests on one intra-op thread and restores the previous setting afterwards.
/// The models here are tiny, so time goes to per-op overhead, not to arithmetic; and when the two
/// cores are shared with other work, OpenMP's spinning second thread makes small ops up to 50x slower.
/// </summary>
[SetUpFixture]
public class ModelsTestSetup
{
    private int previousThreads;

    [OneTimeSetUp]
    public void UseOneThread()
    {
        previousThreads = get_num_threads();
        set_num_threads(1);
    }

    [OneTimeTearDown]
    public void RestoreThreads() => set_num_threads(previousThreads);
}
