using System.IO.Compression;
using System.Text;
using Orleans.Optim.Cli.Training;
using Xunit;

namespace Orleans.Optim.Tests.Training;

/// <summary>Loading, splitting and per-epoch shuffling of the embedded digits data set.</summary>
public sealed class DigitsDatasetTests
{
    // Row 0 of digits.csv.gz: 64 pixel counts, then the label 0.
    private static readonly int[] FirstRowPixels =
    [
        0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
        0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0,
    ];

    // First held-out rows for split seed 0 and first positions of epoch 3 for seed 7, checked against a separate
    // Python implementation of the same SplitMix64 and Fisher-Yates steps.
    private static readonly int[] PinnedHeldOutRows = [3, 11, 13, 18, 21, 32, 47, 51];

    private static readonly int[] PinnedEpochOrder = [1363, 1437, 565, 289, 720, 434, 213, 639];

    [Fact]
    public void EmbeddedDatasetHasAllRows()
    {
        var dataset = DigitsDataset.LoadEmbedded();

        Assert.Equal(1497, dataset.Train.Count);
        Assert.Equal(300, dataset.HeldOut.Count);
        Assert.Equal(DigitsDataset.EmbeddedRowCount, dataset.Train.Count + dataset.HeldOut.Count);
        Assert.Equal(dataset.Train.Count * 64, dataset.Train.Inputs.Length);
        Assert.Equal(dataset.HeldOut.Count * 64, dataset.HeldOut.Inputs.Length);

        // Every class occurs in both parts, and no label is outside 0..9.
        Assert.Equal(Enumerable.Range(0, 10), dataset.Train.Labels.ToArray().Distinct().Order());
        Assert.Equal(Enumerable.Range(0, 10), dataset.HeldOut.Labels.ToArray().Distinct().Order());
    }

    [Fact]
    public void InputsAreCountsOverSixteen()
    {
        var dataset = DigitsDataset.LoadEmbedded();
        float[] inputs = [.. dataset.Train.Inputs, .. dataset.HeldOut.Inputs];

        Assert.All(inputs, value => Assert.InRange(value, 0f, 1f));
        Assert.All(inputs, value => Assert.Equal(MathF.Round(value * 16f), value * 16f));
        Assert.Contains(1f, inputs);

        // Row 0 of the file, wherever the split put it.
        var (split, position) = FindSourceRow(dataset, 0);
        var firstRow = split.Inputs.Slice(position * 64, 64).ToArray();
        Assert.Equal(FirstRowPixels.Select(count => count / 16f), firstRow);
        Assert.Equal(0, split.Labels[position]);
    }

    [Fact]
    public void SplitIsDisjointAndComplete()
    {
        var dataset = DigitsDataset.LoadEmbedded();
        int[] train = dataset.Train.SourceRows.ToArray();
        int[] heldOut = dataset.HeldOut.SourceRows.ToArray();

        Assert.Empty(train.Intersect(heldOut));
        Assert.Equal(Enumerable.Range(0, DigitsDataset.EmbeddedRowCount), train.Concat(heldOut).Order());
        Assert.Equal(train.Order(), train);
        Assert.Equal(heldOut.Order(), heldOut);
    }

    [Fact]
    public void SplitIsDeterministicPerSeed()
    {
        var first = DigitsDataset.LoadEmbedded();
        var second = DigitsDataset.LoadEmbedded();
        var otherSeed = DigitsDataset.LoadEmbedded(splitSeed: 1);

        Assert.Equal(first.HeldOut.SourceRows.ToArray(), second.HeldOut.SourceRows.ToArray());
        Assert.Equal(first.Train.Inputs.ToArray(), second.Train.Inputs.ToArray());
        Assert.NotEqual(first.HeldOut.SourceRows.ToArray(), otherSeed.HeldOut.SourceRows.ToArray());
    }

    [Fact]
    public void SplitMatchesPinnedRows()
    {
        // Pinned so that a change to the generator or the split, which would change every run's held-out set
        // and break resuming runs across versions, fails here first.
        var dataset = DigitsDataset.LoadEmbedded();

        Assert.Equal(PinnedHeldOutRows, dataset.HeldOut.SourceRows[..8].ToArray());
    }

    [Fact]
    public void EpochOrderIsReproduciblePermutation()
    {
        var dataset = DigitsDataset.LoadEmbedded();

        int[] order = dataset.GetEpochOrder(seed: 7, epoch: 3);
        Assert.Equal(Enumerable.Range(0, dataset.Train.Count), order.Order());
        Assert.Equal(order, DigitsDataset.LoadEmbedded().GetEpochOrder(seed: 7, epoch: 3));
        Assert.Equal(PinnedEpochOrder, order[..8]);

        Assert.NotEqual(order, dataset.GetEpochOrder(seed: 7, epoch: 4));
        Assert.NotEqual(order, dataset.GetEpochOrder(seed: 8, epoch: 3));
        Assert.NotEqual(Enumerable.Range(0, dataset.Train.Count), order);
    }

    [Fact]
    public void ResumedRunSeesSameBatches()
    {
        const long seed = 42;
        const int batchSize = 16;
        const int epochCount = 3;

        var dataset = DigitsDataset.LoadEmbedded();
        int batchCount = dataset.GetBatchCount(batchSize);
        var uninterrupted = new List<string>();
        for (int epoch = 0; epoch < epochCount; epoch++)
        {
            int[] order = dataset.GetEpochOrder(seed, epoch);
            for (int batch = 0; batch < batchCount; batch++)
            {
                uninterrupted.Add(DescribeBatch(dataset, order, batch, batchSize));
            }
        }

        // A fresh process resumes in the middle of epoch 1.
        var resumedDataset = DigitsDataset.LoadEmbedded();
        long resumeStep = batchCount + 17;
        var resumed = new List<string>();
        for (long step = resumeStep; step < (long)batchCount * epochCount; step++)
        {
            var (epoch, batch) = resumedDataset.LocateStep(step, batchSize);
            resumed.Add(DescribeBatch(resumedDataset, resumedDataset.GetEpochOrder(seed, epoch), batch, batchSize));
        }

        Assert.Equal(uninterrupted.Skip((int)resumeStep), resumed);
        Assert.Equal(uninterrupted.Count, uninterrupted.Distinct().Count());
    }

    [Fact]
    public void BatchCountDropsPartialBatch()
    {
        var dataset = DigitsDataset.LoadEmbedded();

        Assert.Equal(93, dataset.GetBatchCount(16));
        Assert.Equal(1, dataset.GetBatchCount(1497));
        Assert.Equal(1497, dataset.GetBatchCount(1));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => dataset.GetBatchCount(1498));
        Assert.Contains("1497", error.Message);
    }

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(92, 0, 92)]
    [InlineData(93, 1, 0)]
    [InlineData(93 * 5 + 4, 5, 4)]
    public void LocateStepMapsToEpochBatch(long step, int expectedEpoch, int expectedBatch)
    {
        var dataset = DigitsDataset.LoadEmbedded();

        var (epoch, batch) = dataset.LocateStep(step, batchSize: 16);

        Assert.Equal(expectedEpoch, epoch);
        Assert.Equal(expectedBatch, batch);
    }

    [Fact]
    public void CopyTrainBatchFollowsEpochOrder()
    {
        var dataset = DigitsDataset.LoadEmbedded();
        int[] order = dataset.GetEpochOrder(seed: 3, epoch: 0);
        var inputs = new float[4 * 64];
        var labels = new int[4];

        dataset.CopyTrainBatch(order, batchIndex: 2, inputs, labels);

        for (int i = 0; i < 4; i++)
        {
            int position = order[8 + i];
            Assert.Equal(dataset.Train.Labels[position], labels[i]);
            Assert.Equal(dataset.Train.Inputs.Slice(position * 64, 64).ToArray(), inputs.AsSpan(i * 64, 64).ToArray());
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => dataset.CopyTrainBatch(order, batchIndex: 374, inputs, labels));
        Assert.Throws<ArgumentException>(() => dataset.CopyTrainBatch(order, batchIndex: 0, new float[3 * 64], labels));
    }

    [Theory]
    [InlineData("17", "line 2, field 3: found '17', expected a pixel count from 0 to 16")]
    [InlineData("-1", "line 2, field 3: found '-1', expected a pixel count from 0 to 16")]
    [InlineData("x", "line 2, field 3: found 'x', expected a pixel count from 0 to 16")]
    [InlineData("1.5", "line 2, field 3: found '1.5', expected a pixel count from 0 to 16")]
    [InlineData("", "line 2, field 3: found '', expected a pixel count from 0 to 16")]
    public void CorruptPixelNamesLineAndValue(string pixel, string expectedMessage)
    {
        var rows = new[] { ValidRow(label: 1), ValidRow(label: 2).Replace("0,0,3,", $"0,0,{pixel},", StringComparison.Ordinal) };

        var error = Assert.Throws<InvalidDataException>(() => LoadCsv(string.Join('\n', rows)));

        Assert.Contains(expectedMessage, error.Message);
        Assert.Contains("test.csv.gz", error.Message);
        Assert.Contains(DigitsDataset.EmbeddedSha256, error.Message);
    }

    [Fact]
    public void CorruptLabelNamesLineAndValue()
    {
        string csv = string.Join('\n', ValidRow(label: 1), ValidRow(label: 2), ValidRow(label: 1)[..^1] + "10");

        var error = Assert.Throws<InvalidDataException>(() => LoadCsv(csv));

        Assert.Contains("line 3, field 65: found '10', expected a label from 0 to 9", error.Message);
    }

    [Theory]
    [InlineData(64, "found 64 comma-separated fields, expected 65")]
    [InlineData(66, "found more than 65 comma-separated fields, expected 65")]
    public void WrongFieldCountNamesLine(int fieldCount, string expectedMessage)
    {
        string badRow = string.Join(',', Enumerable.Repeat("1", fieldCount));
        string csv = string.Join("\r\n", ValidRow(label: 1), ValidRow(label: 2), ValidRow(label: 3), badRow);

        var error = Assert.Throws<InvalidDataException>(() => LoadCsv(csv));

        Assert.Contains("line 4", error.Message);
        Assert.Contains(expectedMessage, error.Message);
    }

    [Fact]
    public void NonGzipDataIsRejected()
    {
        using var stream = new MemoryStream(Encoding.ASCII.GetBytes(ValidRow(label: 1) + "\n" + ValidRow(label: 2)));

        var error = Assert.Throws<InvalidDataException>(() => DigitsDataset.Load(stream, "plain.csv"));

        Assert.Contains("plain.csv is not valid gzip data", error.Message);
    }

    [Fact]
    public void TooFewRowsAreRejected()
    {
        var error = Assert.Throws<InvalidDataException>(() => LoadCsv(ValidRow(label: 1) + "\n\n"));

        Assert.Contains("test.csv.gz has 1 data rows, expected at least 2", error.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void InvalidHeldOutCountIsRejected(int heldOutCount)
    {
        string csv = string.Join('\n', ValidRow(label: 1), ValidRow(label: 2), ValidRow(label: 3));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => LoadCsv(csv, heldOutCount));

        Assert.Equal("heldOutCount", error.ParamName);
        Assert.Contains("from 1 to 2", error.Message);
    }

    [Fact]
    public void SmallValidFileLoads()
    {
        string csv = string.Join("\r\n", ValidRow(label: 1), ValidRow(label: 2), ValidRow(label: 3)) + "\r\n";

        var dataset = LoadCsv(csv, heldOutCount: 1);

        Assert.Equal(2, dataset.Train.Count);
        Assert.Equal(1, dataset.HeldOut.Count);
        Assert.Equal(3f / 16f, dataset.Train.Inputs[2]);
    }

    // A valid row: pixel counts 0, 0, 3, 16, 16, ... and the given label.
    private static string ValidRow(int label) =>
        "0,0,3," + string.Join(',', Enumerable.Repeat("16", 61)) + "," + label;

    private static DigitsDataset LoadCsv(string csv, int heldOutCount = 1)
    {
        using var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(Encoding.ASCII.GetBytes(csv));
        }

        compressed.Position = 0;
        return DigitsDataset.Load(compressed, "test.csv.gz", heldOutCount: heldOutCount);
    }

    private static (DigitsSplit Split, int Position) FindSourceRow(DigitsDataset dataset, int sourceRow)
    {
        int position = dataset.Train.SourceRows.IndexOf(sourceRow);
        if (position >= 0)
        {
            return (dataset.Train, position);
        }

        position = dataset.HeldOut.SourceRows.IndexOf(sourceRow);
        Assert.True(position >= 0, $"Source row {sourceRow} is in neither split.");
        return (dataset.HeldOut, position);
    }

    private static string DescribeBatch(DigitsDataset dataset, int[] order, int batch, int batchSize)
    {
        var inputs = new float[batchSize * 64];
        var labels = new int[batchSize];
        dataset.CopyTrainBatch(order, batch, inputs, labels);
        return string.Join(',', order.AsSpan(batch * batchSize, batchSize).ToArray().Select(position => dataset.Train.SourceRows[position]))
            + "|" + string.Join(',', labels) + "|" + inputs.Sum().ToString("R", System.Globalization.CultureInfo.InvariantCulture);
    }
}
