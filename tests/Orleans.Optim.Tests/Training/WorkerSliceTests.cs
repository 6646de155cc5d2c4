using Orleans.Optim.Cli.Training;
using Xunit;

namespace Orleans.Optim.Tests.Training;

/// <summary>Tests of the contiguous per-worker slices of a batch.</summary>
public sealed class WorkerSliceTests
{
    [Theory]
    [InlineData(16, 1)]
    [InlineData(16, 2)]
    [InlineData(16, 4)]
    [InlineData(16, 3)]
    [InlineData(16, 16)]
    [InlineData(10, 4)]
    [InlineData(13, 5)]
    [InlineData(7, 6)]
    public void SlicesCoverBatchInRankOrder(int batchSize, int worldSize)
    {
        int nextOffset = 0;
        for (int rank = 0; rank < worldSize; rank++)
        {
            var slice = WorkerSlice.Create(batchSize, worldSize, rank);

            Assert.Equal(nextOffset, slice.Offset);
            int expectedCount = (batchSize / worldSize) + (rank < batchSize % worldSize ? 1 : 0);
            Assert.Equal(expectedCount, slice.Count);
            Assert.Equal((double)worldSize * slice.Count / batchSize, slice.GradientScale);
            nextOffset += slice.Count;
        }

        Assert.Equal(batchSize, nextOffset);
    }

    [Fact]
    public void SixteenOverThreeMatchesTensorSplit()
    {
        // torch.arange(16).tensor_split(3) gives sizes 6, 5, 5 in torch 1.13.
        var slices = Enumerable.Range(0, 3).Select(rank => WorkerSlice.Create(16, 3, rank)).ToArray();

        Assert.Equal([0, 6, 11], slices.Select(slice => slice.Offset));
        Assert.Equal([6, 5, 5], slices.Select(slice => slice.Count));
        Assert.Equal(18.0 / 16.0, slices[0].GradientScale);
        Assert.Equal(15.0 / 16.0, slices[2].GradientScale);
    }

    [Fact]
    public void EqualSlicesHaveUnitScale()
    {
        for (int rank = 0; rank < 4; rank++)
        {
            Assert.Equal(1.0, WorkerSlice.Create(16, 4, rank).GradientScale);
        }
    }

    [Fact]
    public void WorldSizeAboveBatchIsRejected()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => WorkerSlice.Create(batchSize: 4, worldSize: 5, rank: 0));

        Assert.Equal("worldSize", error.ParamName);
        Assert.Equal(5, error.ActualValue);
        Assert.Contains("from 1 to the batch size 4", error.Message);
        Assert.Contains("Use fewer workers or a larger batch", error.Message);
    }

    [Theory]
    [InlineData(16, 4, 4, "rank")]
    [InlineData(16, 4, -1, "rank")]
    [InlineData(16, 0, 0, "worldSize")]
    [InlineData(0, 1, 0, "batchSize")]
    public void InvalidArgumentsAreRejected(int batchSize, int worldSize, int rank, string parameterName)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => WorkerSlice.Create(batchSize, worldSize, rank));

        Assert.Equal(parameterName, error.ParamName);
    }
}
