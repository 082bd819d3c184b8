using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Distillation;

/// <summary>
/// Distillation on a real cluster of processes: serve, one trainer worker and three teacher workers on loopback, the
/// trial asking for two teachers. One of its teachers is killed (kill -9) while the student trains: the student's
/// requests move to the other teacher at once, the coordinator notices the lost worker and starts a replacement teacher on
/// the idle one, and the trial completes without a restart and without losing a step.
/// </summary>
[Category("Chaos")]
public sealed class TeacherFailoverTests
{
    private const int Steps = 300;

    [Test]
    public async Task TeacherKilledMidTrial_StudentFailsOverToTheOtherTeacher_AndEveryStepIsTrainedOnce()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        var teacher = DistillationFixture.TrainTeacher(dir.Path, steps: 20);
        var path = dir.Combine("distill.yaml");
        File.WriteAllText(path, DistillationFixture.StudentExperiment("distill", Steps, $"""
            objective:
              kind: distill
              input_length: 10
              target_length: 10
            distill:
              teacher: {teacher}
              on_policy: 0.5
              max_new_tokens: 10
            """, "resources:\n  teachers: 2"));
        var runs = dir.Combine("served");
        await using var cluster = await ServedCluster.StartAsync(runs, dataRoot: dir.Path);
        var student = await cluster.AddWorkerAsync();
        var first = await cluster.AddWorkerAsync(extraArgs: ["--role", "teacher"]);
        var second = await cluster.AddWorkerAsync(extraArgs: ["--role", "teacher"]);
        var spare = await cluster.AddWorkerAsync(extraArgs: ["--role", "teacher"]);
        using var submit = CliProcess.Start(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var submitted = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(6));

        // Two teachers serve before the kill, so the student has one to fail over to; the third waits as the spare.
        await WaitUntil(() => new[] { first, second, spare }.Count(w => w.Output.Contains("serves at")) == 2, TimeSpan.FromMinutes(2), "two teachers serving");
        var victim = first.Output.Contains("serves at") ? first : second;
        var idle = new[] { first, second, spare }.Single(w => !w.Output.Contains("serves at"));
        await WaitUntil(() => Steps0(runs) >= 20, TimeSpan.FromMinutes(3), "20 trained steps");
        victim.KillHard();

        var result = await submitted;
        var runDir = Directory.GetDirectories(runs).Single();
        var events = RunEvents.Read(runDir);
        var steps = events.Where(e => RunEvents.Type(e) == "step").Select(e => e.GetProperty("step").GetInt64()).ToList();
        var output = $"{result.Output}\n{cluster.AllServeOutput}\n{student.Output}\n{idle.Output}";
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(0), output);
            Assert.That(events.Count(e => RunEvents.Type(e) == "start"), Is.EqualTo(1), "no restart: the student kept training " + output);
            Assert.That(steps, Is.EqualTo(Enumerable.Range(1, Steps).Select(i => (long)i)), "every step trained and logged once");
            Assert.That(events.Last(e => RunEvents.Type(e) == "finish").GetProperty("outcome").GetString(), Is.EqualTo("completed"));
            Assert.That(cluster.AllServeOutput, Does.Contain("a student lost its teacher"), output);
            Assert.That(idle.Output, Does.Contain("serves at"), "the spare teacher worker took over " + output);
            Assert.That(events.Where(e => RunEvents.Type(e) == "warning").Select(e => e.GetRawText()), Has.Some.Contains("teachers:"),
                "the student recorded that it lost a teacher");
        });
    }

    private static long Steps0(string runs) =>
        RunEvents.Read(runs).Where(e => RunEvents.Type(e) == "step").Select(e => e.GetProperty("step").GetInt64()).DefaultIfEmpty(0).Max();

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(200);
        }
    }
}
