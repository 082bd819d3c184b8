using NUnit.Framework;
using Training.Shared.Collectives;

namespace Training.Tests.Collectives;

public class RingScheduleTests
{
    [Test]
    public void Chunk_AnySizeAndWorld_ChunksTileTheBufferWithSizesWithinOne()
    {
        foreach (var world in new[] { 1, 2, 3, 4, 5 })
        foreach (var elements in new long[] { 0, 1, 3, 4, 7, 10, 1_000_003 })
        {
            var schedule = new RingSchedule(0, world, elements);
            long next = 0;
            var sizes = new List<long>();
            for (var c = 0; c < world; c++)
            {
                var (start, count) = schedule.Chunk(c);
                Assert.That(start, Is.EqualTo(next), $"W={world} N={elements} chunk {c} starts where the previous ended");
                next += count;
                sizes.Add(count);
            }
            Assert.That(next, Is.EqualTo(elements), $"W={world} N={elements}: chunks cover the buffer");
            Assert.That(sizes.Max() - sizes.Min(), Is.LessThanOrEqualTo(1), $"W={world} N={elements}: chunk sizes");
        }
    }

    [Test]
    public void SendAndReceiveChunks_EveryStep_WhatRankRSendsIsWhatItsSuccessorExpects()
    {
        foreach (var world in new[] { 2, 3, 4, 5 })
        {
            var schedules = Enumerable.Range(0, world).Select(r => new RingSchedule(r, world, 100)).ToArray();
            for (var step = 0; step < schedules[0].StepCount; step++)
            for (var r = 0; r < world; r++)
                Assert.That(schedules[(r + 1) % world].ReceiveChunk(step), Is.EqualTo(schedules[r].SendChunk(step)), $"W={world} step {step} rank {r}");

            foreach (var schedule in schedules)
            {
                Assert.That(schedule.ReceiveChunk(schedule.LastReduceStep), Is.EqualTo(schedule.OwnedChunk), $"W={world} rank {schedule.Rank} finishes its own chunk");
                for (var step = 1; step < schedule.StepCount; step++)
                    Assert.That(schedule.SendChunk(step), Is.EqualTo(schedule.ReceiveChunk(step - 1)), $"W={world} rank {schedule.Rank}: step {step} forwards what step {step - 1} received");
                var gathered = Enumerable.Range(world - 1, world - 1).Select(schedule.ReceiveChunk).Append(schedule.OwnedChunk);
                Assert.That(gathered, Is.EquivalentTo(Enumerable.Range(0, world)), $"W={world} rank {schedule.Rank} ends with every chunk");
            }
        }
    }
}
