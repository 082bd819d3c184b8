namespace Training.Shared.Objectives.Distillation;

/// <summary>
/// One example aligned for a decoder-only teacher and an encoder-decoder student. The teacher reads
/// <see cref="TeacherInput"/> (the prompt left-padded to the source length S, then the target); its logits at
/// <c>ScoreFrom + t</c> predict target token <c>t</c> for <c>t</c> in <c>[0, ScoreCount)</c>. The student's decoder
/// reads <see cref="StudentDecoderInput"/>, so its position <c>t</c> predicts the same token.
/// </summary>
public sealed record AlignedExample(long[] TeacherInput, int ScoreFrom, int ScoreCount, long[] StudentDecoderInput);

/// <summary>
/// Lines a teacher's and a student's positions up so both predict the same target token at matched positions
/// (SPEC.md, distillation from a decoder-only teacher). Left padding puts the last prompt token at a fixed index
/// S - 1 for every example of a batch, so one slice of the teacher's logits serves the whole batch.
/// </summary>
public static class SequenceAlignment
{
    /// <summary>Aligns one (prompt, target) pair; a prompt longer than <paramref name="sourceLength"/> keeps its last tokens, the ones nearest the target.</summary>
    public static AlignedExample Align(long[] prompt, long[] target, int sourceLength, long pad, long bos)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(target);
        if (target.Length == 0) throw new ArgumentException("the target is empty: there is no token to score", nameof(target));
        if (sourceLength < 1) throw new ArgumentOutOfRangeException(nameof(sourceLength), sourceLength, "must be >= 1 (the teacher scores target token 0 at index S - 1)");

        var teacher = new long[sourceLength + target.Length];
        var kept = Math.Min(prompt.Length, sourceLength);
        var padding = sourceLength - kept;
        Array.Fill(teacher, pad, 0, padding);
        Array.Copy(prompt, prompt.Length - kept, teacher, padding, kept);
        Array.Copy(target, 0, teacher, sourceLength, target.Length);

        // Teacher forcing for the student: it sees BOS, then the target shifted right by one.
        var decoder = new long[target.Length];
        decoder[0] = bos;
        Array.Copy(target, 0, decoder, 1, target.Length - 1);

        return new AlignedExample(teacher, sourceLength - 1, target.Length, decoder);
    }
}
