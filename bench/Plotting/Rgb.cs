namespace Training.Bench.Plotting;

/// <summary>An opaque 8-bit-per-channel colour.</summary>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    public static Rgb White { get; } = new(255, 255, 255);
    public static Rgb Black { get; } = new(0, 0, 0);
    public static Rgb Grid { get; } = new(225, 225, 225);
    public static Rgb Axis { get; } = new(60, 60, 60);
}
