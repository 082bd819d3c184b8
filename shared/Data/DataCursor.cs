namespace Training.Shared.Data;

/// <summary>
/// Where a <see cref="PackedExampleStream"/> stands: the next window is <see cref="Carry"/> followed by the tokens of
/// row <see cref="RowInUnit"/> (from token <see cref="TokenOffsetInRow"/>) of the unit at <see cref="UnitIndex"/> in
/// epoch <see cref="Epoch"/>'s unit order, and so on. A unit is one (file, row group). Small and JSON-serializable
/// (System.Text.Json) so it can be stored in a checkpoint.
/// </summary>
/// <param name="Epoch">Passes over the data completed before the current one.</param>
/// <param name="UnitIndex">Position in this epoch's permutation of units (not the unit's own number).</param>
/// <param name="RowInUnit">Row among the unit's non-null-text rows.</param>
/// <param name="TokenOffsetInRow">Tokens of that row (document tokens + EOS) already served.</param>
/// <param name="ExamplesServed">Windows returned so far: the global index of the next example.</param>
/// <param name="Carry">Tokens already taken from earlier rows for the next window; fewer than the window length.</param>
public sealed record DataCursor(int Epoch, int UnitIndex, int RowInUnit, int TokenOffsetInRow, long ExamplesServed, int[] Carry)
{
    public static DataCursor Start { get; } = new(0, 0, 0, 0, 0, []);

    public bool Equals(DataCursor? other) =>
        other is not null
        && Epoch == other.Epoch && UnitIndex == other.UnitIndex && RowInUnit == other.RowInUnit
        && TokenOffsetInRow == other.TokenOffsetInRow && ExamplesServed == other.ExamplesServed
        && Carry.AsSpan().SequenceEqual(other.Carry);

    public override int GetHashCode() =>
        HashCode.Combine(Epoch, UnitIndex, RowInUnit, TokenOffsetInRow, ExamplesServed, Carry.Length);

    public override string ToString() =>
        $"DataCursor {{ Epoch = {Epoch}, UnitIndex = {UnitIndex}, RowInUnit = {RowInUnit}, " +
        $"TokenOffsetInRow = {TokenOffsetInRow}, ExamplesServed = {ExamplesServed}, Carry = {Carry.Length} tokens }}";
}
