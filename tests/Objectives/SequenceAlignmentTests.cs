using NUnit.Framework;
using Training.Shared.Objectives.Distillation;

namespace Training.Tests.Objectives;

/// <summary>Teacher and student positions line up: teacher index S - 1 + t and student index t both predict target t.</summary>
public class SequenceAlignmentTests
{
    private const long Pad = 0;
    private const long Bos = 1;

    [Test]
    public void Align_PromptShorterThanSource_LeftPadsItAndAppendsTheTarget()
    {
        var aligned = SequenceAlignment.Align([10, 11], [20, 21, 22], sourceLength: 5, Pad, Bos);

        Assert.Multiple(() =>
        {
            Assert.That(aligned.TeacherInput, Is.EqualTo(new long[] { 0, 0, 0, 10, 11, 20, 21, 22 }));
            Assert.That(aligned.ScoreFrom, Is.EqualTo(4));
            Assert.That(aligned.ScoreCount, Is.EqualTo(3));
            Assert.That(aligned.StudentDecoderInput, Is.EqualTo(new long[] { Bos, 20, 21 }));
        });
    }

    [Test]
    public void Align_PromptOfExactlySourceLength_HasNoPadding()
    {
        var aligned = SequenceAlignment.Align([10, 11, 12], [20, 21], sourceLength: 3, Pad, Bos);

        Assert.That(aligned.TeacherInput, Is.EqualTo(new long[] { 10, 11, 12, 20, 21 }));
        Assert.That(aligned.ScoreFrom, Is.EqualTo(2));
    }

    [Test]
    public void Align_PromptLongerThanSource_KeepsItsLastTokens()
    {
        var aligned = SequenceAlignment.Align([10, 11, 12, 13, 14, 15], [20], sourceLength: 4, Pad, Bos);

        Assert.Multiple(() =>
        {
            Assert.That(aligned.TeacherInput, Is.EqualTo(new long[] { 12, 13, 14, 15, 20 }));
            Assert.That(aligned.ScoreFrom, Is.EqualTo(3));
            Assert.That(aligned.ScoreCount, Is.EqualTo(1));
            Assert.That(aligned.StudentDecoderInput, Is.EqualTo(new long[] { Bos }));
        });
    }

    /// <summary>
    /// An "oracle" teacher that predicts at each index the token that follows it in its own input: its prediction at
    /// ScoreFrom + t must be target t, and the student's decoder input at t is the token before target t.
    /// </summary>
    [TestCase(0, 4)]
    [TestCase(3, 4)]
    [TestCase(4, 4)]
    [TestCase(9, 4)]
    [TestCase(2, 1)]
    public void Align_OracleNextTokenTeacher_PredictsEachTargetTokenAtScoreFromPlusT(int promptLength, int sourceLength)
    {
        var prompt = Enumerable.Range(0, promptLength).Select(i => 100L + i).ToArray();
        var target = new long[] { 50, 51, 52, 53, 54 };

        var aligned = SequenceAlignment.Align(prompt, target, sourceLength, Pad, Bos);

        Assert.That(aligned.TeacherInput, Has.Length.EqualTo(sourceLength + target.Length));
        Assert.That(aligned.ScoreFrom, Is.EqualTo(sourceLength - 1));
        for (var t = 0; t < aligned.ScoreCount; t++)
        {
            var teacherPrediction = aligned.TeacherInput[aligned.ScoreFrom + t + 1];
            Assert.That(teacherPrediction, Is.EqualTo(target[t]), $"teacher position {aligned.ScoreFrom + t}");
            Assert.That(aligned.StudentDecoderInput[t], Is.EqualTo(t == 0 ? Bos : target[t - 1]), $"student position {t}");
        }
        // The last prompt token (or a pad when there is no prompt) sits right before the target.
        Assert.That(aligned.TeacherInput[aligned.ScoreFrom], Is.EqualTo(promptLength == 0 ? Pad : prompt[^1]));
    }

    [Test]
    public void Align_EmptyTarget_Throws()
    {
        Assert.Throws<ArgumentException>(() => SequenceAlignment.Align([10, 11], [], sourceLength: 4, Pad, Bos));
    }

    [Test]
    public void Align_ZeroSourceLength_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SequenceAlignment.Align([10], [20], sourceLength: 0, Pad, Bos));
    }
}
