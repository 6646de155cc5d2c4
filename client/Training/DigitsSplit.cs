namespace Orleans.Optim.Cli.Training;

/// <summary>
/// One part of the digits data set (train or held-out): scaled inputs, labels and the CSV row each sample came from.
/// </summary>
/// <remarks>Instances are immutable, so any number of workers can read one concurrently.</remarks>
public sealed class DigitsSplit
{
    private readonly float[] _inputs;
    private readonly int[] _labels;
    private readonly int[] _sourceRows;

    internal DigitsSplit(float[] inputs, int[] labels, int[] sourceRows)
    {
        _inputs = inputs;
        _labels = labels;
        _sourceRows = sourceRows;
    }

    /// <summary>Number of samples.</summary>
    public int Count => _labels.Length;

    /// <summary>Inputs as a [<see cref="Count"/>, 64] row-major matrix of pixel counts divided by 16, each in [0, 1].</summary>
    public ReadOnlySpan<float> Inputs => _inputs;

    /// <summary>Class labels, each in 0..9.</summary>
    public ReadOnlySpan<int> Labels => _labels;

    /// <summary>Zero-based row number in the CSV file of each sample, in ascending order.</summary>
    public ReadOnlySpan<int> SourceRows => _sourceRows;

    /// <summary>
    /// Copies the samples at <paramref name="indices"/> (positions in this split) into a batch, in the order given.
    /// </summary>
    /// <param name="indices">Positions in this split, each in [0, <see cref="Count"/>).</param>
    /// <param name="inputs">Destination of the [indices.Length, 64] row-major inputs.</param>
    /// <param name="labels">Destination of the labels, exactly indices.Length long.</param>
    /// <exception cref="ArgumentException">A destination has the wrong length.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside the split.</exception>
    public void CopyRows(ReadOnlySpan<int> indices, Span<float> inputs, Span<int> labels)
    {
        int featureCount = DigitsDataset.FeatureCount;
        if (inputs.Length != indices.Length * featureCount)
        {
            throw new ArgumentException(
                $"The inputs buffer has {inputs.Length} elements, but {indices.Length} samples need {indices.Length * featureCount}. Allocate indices.Length * 64 floats.",
                nameof(inputs));
        }

        if (labels.Length != indices.Length)
        {
            throw new ArgumentException(
                $"The labels buffer has {labels.Length} elements, but there are {indices.Length} indices. Allocate one label per index.",
                nameof(labels));
        }

        for (int i = 0; i < indices.Length; i++)
        {
            int index = indices[i];
            if ((uint)index >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(indices), index, $"Index {index} at position {i} is outside the split of {Count} samples. Use indices from 0 to {Count - 1}.");
            }

            _inputs.AsSpan(index * featureCount, featureCount).CopyTo(inputs.Slice(i * featureCount, featureCount));
            labels[i] = _labels[index];
        }
    }
}
