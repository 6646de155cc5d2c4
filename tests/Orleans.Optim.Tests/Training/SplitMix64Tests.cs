using Orleans.Optim.Cli.Training;
using Xunit;

namespace Orleans.Optim.Tests.Training;

/// <summary>The generator behind the data split, the epoch shuffles and the initial parameters.</summary>
public sealed class SplitMix64Tests
{
    [Fact]
    public void OutputsMatchReferenceValues()
    {
        // Outputs for seed 1234567, checked against a separate Python implementation of SplitMix64.
        var random = new SplitMix64(1234567);

        Assert.Equal(6457827717110365317UL, random.NextUInt64());
        Assert.Equal(3203168211198807973UL, random.NextUInt64());
        Assert.Equal(9817491932198370423UL, random.NextUInt64());
    }

    [Fact]
    public void BoundedValuesStayInRange()
    {
        var random = new SplitMix64(5);
        var counts = new int[7];
        for (int i = 0; i < 70_000; i++)
        {
            counts[random.NextInt32(7)]++;
        }

        // Each of the 7 values should occur about 10,000 times, and 9,500 is more than 5 standard deviations (93) away.
        Assert.All(counts, count => Assert.InRange(count, 9_500, 10_500));
    }

    [Fact]
    public void SinglesAreInUnitInterval()
    {
        var random = new SplitMix64(9);
        float min = 1f;
        float max = 0f;
        for (int i = 0; i < 100_000; i++)
        {
            float value = random.NextSingle();
            Assert.InRange(value, 0f, MathF.BitDecrement(1f));
            min = MathF.Min(min, value);
            max = MathF.Max(max, value);
        }

        Assert.True(min < 1e-3f, $"The smallest of 100,000 values is {min}, expected one below 0.001.");
        Assert.True(max > 0.999f, $"The largest of 100,000 values is {max}, expected one above 0.999.");
    }
}
