using System.Collections;

namespace Training.Shared.Spec;

/// <summary>
/// Read-only list with element-wise equality, so spec records that hold lists compare by value
/// (a resumed run can check that its saved spec equals the submitted one).
/// </summary>
public sealed class SpecList<T> : IReadOnlyList<T>, IEquatable<SpecList<T>>
{
    public static readonly SpecList<T> Empty = new([]);

    private readonly T[] items;

    public SpecList(IEnumerable<T> items) => this.items = items.ToArray();

    public int Count => items.Length;
    public T this[int index] => items[index];
    public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)items).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => items.GetEnumerator();

    public bool Equals(SpecList<T>? other) => other is not null && items.SequenceEqual(other.items);

    // Any read-only list with the same elements is equal, so a record built in code with an array still compares.
    public override bool Equals(object? obj) => obj is IReadOnlyList<T> other && items.SequenceEqual(other);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var item in items) hash.Add(item);
        return hash.ToHashCode();
    }

    public override string ToString() => "[" + string.Join(", ", items) + "]";
}
