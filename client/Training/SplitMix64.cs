namespace Orleans.Optim.Cli.Training;

/// <summary>
/// SplitMix64 pseudo-random generator: a 64-bit counter advanced by a fixed odd constant and hashed by a mixing function.
/// </summary>
/// <remarks>
/// The training code uses it in place of a seeded <see cref="Random"/> so that the data split, the epoch shuffles
/// and the initial parameters are fixed by this file alone, whatever algorithm a .NET version puts behind
/// <see cref="Random"/>. The generator is a mutable struct, so each caller owns its copy.
/// </remarks>
internal struct SplitMix64
{
    private const ulong GoldenGamma = 0x9E3779B97F4A7C15;

    private ulong _state;

    /// <summary>Creates a generator that starts from the state <paramref name="seed"/>.</summary>
    public SplitMix64(ulong seed) => _state = seed;

    /// <summary>
    /// Creates the generator for one use of a user seed. <paramref name="stream"/> is a constant per use (split,
    /// epoch shuffle, initialisation), so one seed gives each use a different sequence. <paramref name="index"/> is
    /// the epoch number, or 0 for a use that needs one sequence.
    /// </summary>
    public static SplitMix64 ForStream(long seed, ulong stream, long index) =>
        new(Mix(Mix((ulong)seed ^ stream) + (ulong)index * GoldenGamma));

    /// <summary>Advances the state and returns the next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        _state += GoldenGamma;
        return Mix(_state);
    }

    /// <summary>Returns an integer in [0, <paramref name="maxExclusive"/>).</summary>
    /// <remarks>
    /// Takes the high 64 bits of a 64x64-bit product. The bias is below maxExclusive / 2^64 (under 1e-15 for the
    /// sizes used here), and unlike rejection sampling it needs no loop.
    /// </remarks>
    public int NextInt32(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);
        return (int)Math.BigMul(NextUInt64(), (ulong)maxExclusive, out _);
    }

    /// <summary>Returns a float in [0, 1) with 24 random bits, every value a multiple of 2^-24.</summary>
    public float NextSingle() => (NextUInt64() >> 40) * (1.0f / (1 << 24));

    /// <summary>Shuffles <paramref name="values"/> in place with the Fisher-Yates algorithm.</summary>
    public void Shuffle(Span<int> values)
    {
        for (int i = values.Length - 1; i > 0; i--)
        {
            int j = NextInt32(i + 1);
            (values[i], values[j]) = (values[j], values[i]);
        }
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
