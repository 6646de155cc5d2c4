namespace Orleans.Optim.Cli.Bench;

/// <summary>Deterministic test data of the benchmarks.</summary>
public static class BenchValues
{
    /// <summary>Returns uniform values in [-1, 1), the same for the same seed.</summary>
    public static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = random.NextSingle() * 2 - 1;
        }

        return values;
    }

    /// <summary>Returns the median of <paramref name="values"/>; for an even count, the mean of the two middle values.</summary>
    public static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
