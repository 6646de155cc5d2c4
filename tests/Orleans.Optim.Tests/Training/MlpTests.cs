using Orleans.Optim.Cli.Training;
using Xunit;

namespace Orleans.Optim.Tests.Training;

/// <summary>Parameters, worker gradients, determinism and input checks of the MLP.</summary>
public sealed class MlpTests
{
    [Fact]
    public void ParametersMatchTorchStateDict()
    {
        var mlp = new Mlp();

        Assert.Equal(["0.weight", "0.bias", "2.weight", "2.bias"], mlp.Parameters.Select(p => p.Name));
        Assert.Equal([32L, 64L], mlp.Parameters[0].Shape);
        Assert.Equal([32L], mlp.Parameters[1].Shape);
        Assert.Equal([10L, 32L], mlp.Parameters[2].Shape);
        Assert.Equal([10L], mlp.Parameters[3].Shape);
        Assert.Equal([2048, 32, 320, 10], mlp.Parameters.Select(p => p.ElementCount));
        Assert.Equal([20L, 64L], new Mlp(hiddenSize: 20).Parameters[0].Shape);
    }

    [Fact]
    public void InitializationIsSeededAndBounded()
    {
        var mlp = new Mlp();

        var first = mlp.InitializeParameters(seed: 5);
        var again = mlp.InitializeParameters(seed: 5);
        var other = mlp.InitializeParameters(seed: 6);

        for (int p = 0; p < first.Length; p++)
        {
            Assert.Equal(first[p], again[p]);
            Assert.NotEqual(first[p], other[p]);

            // nn.Linear's default: weight and bias uniform within 1/sqrt(fan_in), fan_in = 64 or 32.
            float bound = p < 2 ? 1f / 8f : 1f / MathF.Sqrt(32f);
            Assert.All(first[p], value => Assert.InRange(value, -bound, bound));
            if (first[p].Length >= 300)
            {
                Assert.True(first[p].Max() > 0.9f * bound, $"{mlp.Parameters[p].Name}: largest value {first[p].Max()} does not reach near {bound}.");
                Assert.True(first[p].Min() < -0.9f * bound, $"{mlp.Parameters[p].Name}: smallest value {first[p].Min()} does not reach near {-bound}.");
            }
        }
    }

    [Theory]
    [InlineData(16, 2)]
    [InlineData(16, 4)]
    [InlineData(16, 16)]
    [InlineData(16, 3)]
    [InlineData(16, 5)]
    [InlineData(13, 4)]
    [InlineData(7, 6)]
    public void MeanOfWorkerGradientsMatchesBatch(int batchSize, int worldSize)
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 21);
        var (inputs, labels) = TakeBatch(batchSize, epoch: 0);
        var (batchLoss, batchGradients) = mlp.ComputeGradients(parameters, inputs, labels);

        double lossSum = 0;
        var gradientSums = batchGradients.Select(g => new double[g.Length]).ToArray();
        for (int rank = 0; rank < worldSize; rank++)
        {
            var (loss, gradients) = mlp.ComputeWorkerGradients(parameters, inputs, labels, rank, worldSize);
            lossSum += loss;
            for (int p = 0; p < gradients.Length; p++)
            {
                for (int i = 0; i < gradients[p].Length; i++)
                {
                    gradientSums[p][i] += gradients[p][i];
                }
            }
        }

        Assert.Equal(batchLoss, lossSum / worldSize, tolerance: 1e-6 * batchLoss);
        for (int p = 0; p < batchGradients.Length; p++)
        {
            double scale = batchGradients[p].Max(value => Math.Abs((double)value));
            for (int i = 0; i < batchGradients[p].Length; i++)
            {
                double mean = gradientSums[p][i] / worldSize;
                Assert.True(
                    Math.Abs(mean - batchGradients[p][i]) <= 1e-6 * scale,
                    $"{mlp.Parameters[p].Name}[{i}]: mean of {worldSize} workers {mean:R}, batch gradient {batchGradients[p][i]:R}.");
            }
        }
    }

    [Fact]
    public void EqualSliceIsUnscaledSliceMean()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 22);
        var (inputs, labels) = TakeBatch(16, epoch: 1);

        var (workerLoss, workerGradients) = mlp.ComputeWorkerGradients(parameters, inputs, labels, rank: 1, worldSize: 4);
        var (sliceLoss, sliceGradients) = mlp.ComputeGradients(parameters, inputs.AsSpan(4 * 64, 4 * 64), labels.AsSpan(4, 4));

        Assert.Equal(sliceLoss, workerLoss);
        for (int p = 0; p < sliceGradients.Length; p++)
        {
            Assert.Equal(sliceGradients[p], workerGradients[p]);
        }
    }

    [Fact]
    public void UnequalSliceIsScaledSliceMean()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 23);
        var (inputs, labels) = TakeBatch(16, epoch: 2);

        // Rank 0 of 3 gets 6 of 16 samples, so its mean gradient is scaled by 3 * 6 / 16.
        var (workerLoss, workerGradients) = mlp.ComputeWorkerGradients(parameters, inputs, labels, rank: 0, worldSize: 3);
        var (sliceLoss, sliceGradients) = mlp.ComputeGradients(parameters, inputs.AsSpan(0, 6 * 64), labels.AsSpan(0, 6));

        const double scale = 3.0 * 6 / 16;
        Assert.Equal(sliceLoss * scale, workerLoss, tolerance: 1e-6);
        for (int p = 0; p < sliceGradients.Length; p++)
        {
            for (int i = 0; i < sliceGradients[p].Length; i++)
            {
                Assert.Equal(sliceGradients[p][i] * scale, workerGradients[p][i], tolerance: 1e-7);
            }
        }
    }

    [Fact]
    public async Task ConcurrentCallsMatchSequentialBits()
    {
        const int worldSize = 4;
        const int repetitions = 200;
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 31);
        var (inputs, labels) = TakeBatch(16, epoch: 3);
        var expected = Enumerable.Range(0, worldSize)
            .Select(rank => mlp.ComputeWorkerGradients(parameters, inputs, labels, rank, worldSize))
            .ToArray();

        var workers = Enumerable.Range(0, worldSize).Select(rank => Task.Run(() =>
        {
            int mismatches = 0;
            for (int repetition = 0; repetition < repetitions; repetition++)
            {
                var (loss, gradients) = mlp.ComputeWorkerGradients(parameters, inputs, labels, rank, worldSize);
                bool same = BitConverter.SingleToInt32Bits(loss) == BitConverter.SingleToInt32Bits(expected[rank].Loss)
                    && gradients.Zip(expected[rank].Gradients).All(pair => pair.First.AsSpan().SequenceEqual(pair.Second));
                mismatches += same ? 0 : 1;
            }

            return mismatches;
        }));
        int[] mismatchCounts = await Task.WhenAll(workers).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.All(mismatchCounts, count => Assert.Equal(0, count));
    }

    [Fact]
    public void WrongParameterLengthIsRejected()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 1);
        parameters[0] = new float[2000];
        var (inputs, labels) = TakeBatch(4, epoch: 0);

        var error = Assert.Throws<ArgumentException>(() => mlp.ComputeGradients(parameters, inputs, labels));

        Assert.Equal("parameters", error.ParamName);
        Assert.Contains("Parameter 0 ('0.weight') has 2000 elements, expected 2048 for shape [32, 64]", error.Message);
    }

    [Fact]
    public void WrongParameterCountIsRejected()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 1)[..3];
        var (inputs, labels) = TakeBatch(4, epoch: 0);

        var error = Assert.Throws<ArgumentException>(() => mlp.Evaluate(parameters, inputs, labels));

        Assert.Contains("Found 3 parameter arrays, expected 4 (0.weight, 0.bias, 2.weight, 2.bias)", error.Message);
    }

    [Fact]
    public void LabelOutOfRangeIsRejected()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 1);
        var (inputs, labels) = TakeBatch(4, epoch: 0);
        labels[2] = 10;

        var error = Assert.Throws<ArgumentException>(() => mlp.ComputeWorkerGradients(parameters, inputs, labels, rank: 0, worldSize: 2));

        Assert.Equal("labels", error.ParamName);
        Assert.Contains("Label 10 of sample 2 is outside the classes 0 to 9", error.Message);
    }

    [Fact]
    public void InputLengthMismatchIsRejected()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 1);
        var (inputs, labels) = TakeBatch(4, epoch: 0);

        var error = Assert.Throws<ArgumentException>(() => mlp.ComputeGradients(parameters, inputs.AsSpan(0, 200), labels));

        Assert.Equal("inputs", error.ParamName);
        Assert.Contains("The inputs have 200 elements, expected 4 samples x 64 features = 256", error.Message);
    }

    [Fact]
    public void EmptyBatchIsRejected()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 1);

        var error = Assert.Throws<ArgumentException>(() => mlp.ComputeGradients(parameters, [], []));

        Assert.Contains("The batch has no labels", error.Message);
    }

    [Fact]
    public void WorkerGradientsRejectLargeWorld()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 1);
        var (inputs, labels) = TakeBatch(4, epoch: 0);

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => mlp.ComputeWorkerGradients(parameters, inputs, labels, rank: 0, worldSize: 5));

        Assert.Equal("worldSize", error.ParamName);
        Assert.Contains("batch size 4", error.Message);
    }

    private static (float[] Inputs, int[] Labels) TakeBatch(int batchSize, int epoch)
    {
        var dataset = DigitsDataset.LoadEmbedded();
        var inputs = new float[batchSize * DigitsDataset.FeatureCount];
        var labels = new int[batchSize];
        dataset.CopyTrainBatch(dataset.GetEpochOrder(seed: 9, epoch), batchIndex: 0, inputs, labels);
        return (inputs, labels);
    }
}
