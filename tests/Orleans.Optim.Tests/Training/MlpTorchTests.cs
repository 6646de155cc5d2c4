using Orleans.Optim.Cli.Training;
using Xunit;
using Xunit.Abstractions;

namespace Orleans.Optim.Tests.Training;

/// <summary>Compares the hand-written forward and backward pass with PyTorch 1.13 on real digits batches.</summary>
public sealed class MlpTorchTests(ITestOutputHelper output)
{
    // Tolerance per element: |ours - torch| <= RelativeTolerance * |torch| + AbsoluteTolerance * max|torch of that tensor|.
    // The second term covers elements that are sums of cancelling terms, whose relative error in float32 is large.
    private const double RelativeTolerance = 1e-5;
    private const double AbsoluteTolerance = 1e-6;

    [Theory]
    [InlineData(32, 16, 1, 1f)]
    [InlineData(32, 7, 2, 1f)]
    [InlineData(32, 1, 3, 1f)]
    [InlineData(32, 16, 4, 4f)]
    [InlineData(20, 16, 5, 1f)]
    public void GradientsMatchTorch(int hiddenSize, int sampleCount, long seed, float parameterScale)
    {
        var mlp = new Mlp(hiddenSize);
        var parameters = mlp.InitializeParameters(seed);
        foreach (var values in parameters)
        {
            // A scale above 1 gives confident, large logits, where a naive softmax would lose precision.
            for (int i = 0; i < values.Length; i++)
            {
                values[i] *= parameterScale;
            }
        }

        var (inputs, labels) = TakeTrainSamples(sampleCount, seed);

        var (loss, gradients) = mlp.ComputeGradients(parameters, inputs, labels);
        var torch = TorchMlp.Run(mlp, parameters, inputs, labels);
        output.WriteLine($"torch {torch.TorchVersion}: loss {torch.Loss:R}, ours {loss:R}");

        AssertClose(torch.Loss, loss, "loss");
        Assert.Equal(mlp.Parameters.Count, torch.Gradients.Length);
        for (int p = 0; p < mlp.Parameters.Count; p++)
        {
            AssertClose(torch.Gradients[p], gradients[p], mlp.Parameters[p].Name);
        }
    }

    [Fact]
    public void EvaluateMatchesTorchLossAndAccuracy()
    {
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed: 11);
        var dataset = DigitsDataset.LoadEmbedded();
        float[] inputs = dataset.HeldOut.Inputs.ToArray();
        int[] labels = dataset.HeldOut.Labels.ToArray();

        var (loss, accuracy) = mlp.Evaluate(parameters, inputs, labels);
        var torch = TorchMlp.Run(mlp, parameters, inputs, labels);
        output.WriteLine($"torch: loss {torch.Loss:R}, accuracy {torch.Accuracy:R}; ours: loss {loss:R}, accuracy {accuracy:R}");

        AssertClose(torch.Loss, loss, "loss");
        Assert.Equal(torch.Accuracy, accuracy, precision: 6);
    }

    private static (float[] Inputs, int[] Labels) TakeTrainSamples(int sampleCount, long seed)
    {
        var dataset = DigitsDataset.LoadEmbedded();
        int[] order = dataset.GetEpochOrder(seed, epoch: 0);
        var inputs = new float[sampleCount * DigitsDataset.FeatureCount];
        var labels = new int[sampleCount];
        dataset.Train.CopyRows(order.AsSpan(0, sampleCount), inputs, labels);
        return (inputs, labels);
    }

    private static void AssertClose(float expected, float actual, string name)
    {
        double error = Math.Abs((double)actual - expected);
        Assert.True(
            error <= RelativeTolerance * Math.Abs(expected),
            $"{name}: ours {actual:R}, torch {expected:R}, error {error:E2} above relative tolerance {RelativeTolerance:E0}.");
    }

    private void AssertClose(float[] expected, float[] actual, string name)
    {
        Assert.Equal(expected.Length, actual.Length);

        double scale = expected.Max(value => Math.Abs((double)value));
        Assert.True(scale > 0, $"{name}: torch's gradient is all zeros, so the comparison would prove nothing.");

        double worstRelative = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs((double)actual[i] - expected[i]);
            double allowed = (RelativeTolerance * Math.Abs(expected[i])) + (AbsoluteTolerance * scale);
            Assert.True(
                error <= allowed,
                $"{name}[{i}]: ours {actual[i]:R}, torch {expected[i]:R}, error {error:E2} above allowed {allowed:E2}.");
            worstRelative = Math.Max(worstRelative, error / scale);
        }

        output.WriteLine($"{name}: largest error is {worstRelative:E2} times the largest torch magnitude {scale:E2}");
    }
}
