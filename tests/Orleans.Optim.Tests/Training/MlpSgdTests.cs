using System.Diagnostics;
using Orleans.Optim.Cli.Training;
using Xunit;
using Xunit.Abstractions;

namespace Orleans.Optim.Tests.Training;

/// <summary>Training test: plain SGD on the mean of the workers' gradients must learn the digits.</summary>
public sealed class MlpSgdTests(ITestOutputHelper output)
{
    [Fact]
    public void SgdWithThreeWorkersLearnsDigits()
    {
        const long seed = 1;
        const int batchSize = 16;
        const int worldSize = 3;
        const int epochCount = 8;
        const float learningRate = 0.2f;

        var dataset = DigitsDataset.LoadEmbedded();
        var mlp = new Mlp();
        var parameters = mlp.InitializeParameters(seed);
        float[] heldOutInputs = dataset.HeldOut.Inputs.ToArray();
        int[] heldOutLabels = dataset.HeldOut.Labels.ToArray();
        var (initialLoss, initialAccuracy) = mlp.Evaluate(parameters, heldOutInputs, heldOutLabels);
        output.WriteLine($"before training: held-out loss {initialLoss:F4}, accuracy {initialAccuracy:P1}");

        var inputs = new float[batchSize * DigitsDataset.FeatureCount];
        var labels = new int[batchSize];
        var stopwatch = Stopwatch.StartNew();
        for (int epoch = 0; epoch < epochCount; epoch++)
        {
            int[] order = dataset.GetEpochOrder(seed, epoch);
            for (int batch = 0; batch < dataset.GetBatchCount(batchSize); batch++)
            {
                dataset.CopyTrainBatch(order, batch, inputs, labels);
                var workerGradients = Enumerable.Range(0, worldSize)
                    .Select(rank => mlp.ComputeWorkerGradients(parameters, inputs, labels, rank, worldSize).Gradients)
                    .ToArray();

                // torch.optim.SGD without momentum: p -= lr * mean of the workers' gradients.
                for (int p = 0; p < parameters.Length; p++)
                {
                    for (int i = 0; i < parameters[p].Length; i++)
                    {
                        float meanGradient = workerGradients.Sum(gradients => gradients[p][i]) / worldSize;
                        parameters[p][i] -= learningRate * meanGradient;
                    }
                }
            }

            var (epochLoss, epochAccuracy) = mlp.Evaluate(parameters, heldOutInputs, heldOutLabels);
            output.WriteLine($"epoch {epoch}: held-out loss {epochLoss:F4}, accuracy {epochAccuracy:P1}, {stopwatch.Elapsed.TotalMilliseconds:F0} ms");
        }

        var (loss, accuracy) = mlp.Evaluate(parameters, heldOutInputs, heldOutLabels);
        Assert.True(accuracy >= 0.9f, $"Held-out accuracy after {epochCount} epochs is {accuracy:P1}, expected at least 90%.");
        Assert.True(loss < initialLoss, $"Held-out loss went from {initialLoss} to {loss}, expected a decrease.");

        // The trained parameters must load into torch's nn.Sequential and classify the held-out set the same way.
        var torch = TorchMlp.Run(mlp, parameters, heldOutInputs, heldOutLabels);
        output.WriteLine($"torch {torch.TorchVersion} on the trained parameters: held-out loss {torch.Loss:F4}, accuracy {torch.Accuracy:P1}");
        Assert.Equal(torch.Loss, loss, tolerance: 1e-5 * torch.Loss);

        // A logit difference in the last bits could flip one near-tie, so allow one sample of 300.
        Assert.InRange(accuracy, torch.Accuracy - (1.0 / 300) - 1e-6, torch.Accuracy + (1.0 / 300) + 1e-6);
    }
}
