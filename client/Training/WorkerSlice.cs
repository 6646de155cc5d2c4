namespace Orleans.Optim.Cli.Training;

/// <summary>
/// One worker's contiguous share of a batch in synchronous data-parallel training.
/// </summary>
/// <remarks>
/// A batch of B samples is cut into W contiguous slices in rank order. When W does not divide B, the first
/// B % W ranks get one sample more than the others, the same sizes as torch's <c>tensor_split</c> and NumPy's
/// <c>array_split</c>. For example, 16 samples over 3 workers are rows [0, 6), [6, 11) and [11, 16).
/// Every worker needs at least one sample, so W may not exceed B.
/// </remarks>
public readonly record struct WorkerSlice
{
    private WorkerSlice(int batchSize, int worldSize, int rank, int offset, int count)
    {
        BatchSize = batchSize;
        WorldSize = worldSize;
        Rank = rank;
        Offset = offset;
        Count = count;
    }

    /// <summary>Number of samples in the whole batch (B).</summary>
    public int BatchSize { get; }

    /// <summary>Number of workers (W).</summary>
    public int WorldSize { get; }

    /// <summary>This worker's rank, from 0 to W - 1.</summary>
    public int Rank { get; }

    /// <summary>Position in the batch of this worker's first sample.</summary>
    public int Offset { get; }

    /// <summary>Number of samples of this worker (n_r).</summary>
    public int Count { get; }

    /// <summary>
    /// Factor W * n_r / B between this worker's reported gradient and the gradient of the mean loss over its own
    /// samples. It is 1 when W divides B. Scaling by it makes the mean of the W workers' gradients the gradient
    /// of the mean loss over the whole batch, which is what an optimizer that averages gradients needs.
    /// </summary>
    public double GradientScale => (double)WorldSize * Count / BatchSize;

    /// <summary>
    /// Returns the slice of worker <paramref name="rank"/> out of <paramref name="worldSize"/> for a batch of
    /// <paramref name="batchSize"/> samples.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range, including a world size larger than the batch.</exception>
    public static WorkerSlice Create(int batchSize, int worldSize, int rank)
    {
        if (batchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be 1 or greater.");
        }

        if (worldSize < 1 || worldSize > batchSize)
        {
            throw new ArgumentOutOfRangeException(
                nameof(worldSize),
                worldSize,
                $"The world size must be from 1 to the batch size {batchSize}, because every worker needs at least one sample. Use fewer workers or a larger batch.");
        }

        if (rank < 0 || rank >= worldSize)
        {
            throw new ArgumentOutOfRangeException(
                nameof(rank), rank, $"The rank must be from 0 to {worldSize - 1} for world size {worldSize}.");
        }

        int baseCount = batchSize / worldSize;
        int remainder = batchSize % worldSize;
        int count = baseCount + (rank < remainder ? 1 : 0);
        int offset = (rank * baseCount) + Math.Min(rank, remainder);
        return new WorkerSlice(batchSize, worldSize, rank, offset, count);
    }
}
