using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace Orleans.Optim.Cli.Training;

/// <summary>
/// The 8x8 handwritten digits data set (1,797 samples, 10 classes), split into a train set and a held-out set.
/// </summary>
/// <remarks>
/// <para>
/// Split: the row numbers 0..N-1 are shuffled with a generator seeded by the split seed. The first
/// N - heldOutCount shuffled rows form <see cref="Train"/> and the rest <see cref="HeldOut"/>. Each part then
/// keeps file order. With the embedded file and the defaults this gives 1,497 train and 300 held-out samples.
/// </para>
/// <para>
/// Epochs: <see cref="GetEpochOrder"/> shuffles the train set from (seed, epoch) alone, and batch b of an epoch
/// is positions [b * batchSize, (b + 1) * batchSize) of that order. So a run resumed at any epoch or step gets
/// the same batches as an uninterrupted run. Instances are immutable and safe to share between threads.
/// </para>
/// </remarks>
public sealed class DigitsDataset
{
    /// <summary>Number of inputs per sample: the 8x8 pixel counts.</summary>
    public const int FeatureCount = 64;

    /// <summary>Number of classes, the digits 0..9.</summary>
    public const int ClassCount = 10;

    /// <summary>Largest pixel count, the number of pixels in a 4x4 block. Inputs are divided by it.</summary>
    public const int MaxPixelCount = 16;

    /// <summary>Number of rows in the embedded file.</summary>
    public const int EmbeddedRowCount = 1797;

    /// <summary>Default size of the held-out set, which leaves 1,497 train samples from the embedded file.</summary>
    public const int DefaultHeldOutCount = 300;

    /// <summary>Default seed of the train/held-out split.</summary>
    public const long DefaultSplitSeed = 0;

    /// <summary>Manifest resource name of the embedded <c>client/Data/digits.csv.gz</c>.</summary>
    public const string ResourceName = "Orleans.Optim.Cli.Data.digits.csv.gz";

    /// <summary>SHA-256 of the embedded file, lowercase hex, as listed in <c>client/Data/README.md</c>.</summary>
    public const string EmbeddedSha256 = "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a";

    // Stream constants keep the split and the epoch shuffles unrelated when a caller passes the same seed to both.
    private const ulong SplitStream = 0x5350_4C49_5400_0001;
    private const ulong EpochStream = 0x4550_4F43_4800_0002;

    private const int FieldsPerRow = FeatureCount + 1;

    // Bounds the decompression, so a damaged or hostile file cannot exhaust memory.
    private const int MaxCsvBytes = 16 * 1024 * 1024;

    private const string RestoreHint = "Use the unmodified digits.csv.gz (SHA-256 " + EmbeddedSha256 + ").";

    private DigitsDataset(DigitsSplit train, DigitsSplit heldOut, long splitSeed)
    {
        Train = train;
        HeldOut = heldOut;
        SplitSeed = splitSeed;
    }

    /// <summary>Train samples, in file order.</summary>
    public DigitsSplit Train { get; }

    /// <summary>Held-out samples for evaluation, in file order.</summary>
    public DigitsSplit HeldOut { get; }

    /// <summary>Seed the split was made with.</summary>
    public long SplitSeed { get; }

    /// <summary>
    /// Loads the file embedded in the client assembly, checks its SHA-256 and splits it.
    /// </summary>
    /// <exception cref="InvalidDataException">The embedded resource is missing, changed or unreadable.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="heldOutCount"/> leaves no train or no held-out sample.</exception>
    public static DigitsDataset LoadEmbedded(long splitSeed = DefaultSplitSeed, int heldOutCount = DefaultHeldOutCount)
    {
        byte[] compressed = ReadEmbeddedResource();

        string sha256 = Convert.ToHexStringLower(SHA256.HashData(compressed));
        if (sha256 != EmbeddedSha256)
        {
            throw new InvalidDataException(
                $"The embedded resource {ResourceName} has SHA-256 {sha256}, expected {EmbeddedSha256}. Restore client/Data/digits.csv.gz from the repository and rebuild the client.");
        }

        using var stream = new MemoryStream(compressed, writable: false);
        return Load(stream, ResourceName, splitSeed, heldOutCount);
    }

    /// <summary>
    /// Loads gzip-compressed digits CSV and splits it. Each row has 64 pixel counts (0..16) and then the label (0..9), with no header row.
    /// </summary>
    /// <param name="gzipCsv">The compressed file. It is read to the end and not disposed.</param>
    /// <param name="sourceName">Name of the file or resource, used in error messages.</param>
    /// <param name="splitSeed">Seed of the train/held-out shuffle.</param>
    /// <param name="heldOutCount">Number of held-out samples. The other rows are train samples.</param>
    /// <exception cref="InvalidDataException">The data is not gzip, or a row is malformed. The message names the line and field.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="heldOutCount"/> leaves no train or no held-out sample.</exception>
    public static DigitsDataset Load(Stream gzipCsv, string sourceName, long splitSeed = DefaultSplitSeed, int heldOutCount = DefaultHeldOutCount)
    {
        ArgumentNullException.ThrowIfNull(gzipCsv);
        ArgumentNullException.ThrowIfNull(sourceName);

        var (pixels, labels) = ParseCsv(gzipCsv, sourceName);
        int rowCount = labels.Count;
        if (heldOutCount < 1 || heldOutCount >= rowCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(heldOutCount), heldOutCount, $"{sourceName} has {rowCount} rows, so the held-out count must be from 1 to {rowCount - 1}.");
        }

        var order = new int[rowCount];
        for (int i = 0; i < rowCount; i++)
        {
            order[i] = i;
        }

        SplitMix64.ForStream(splitSeed, SplitStream, 0).Shuffle(order);
        int trainCount = rowCount - heldOutCount;
        var train = CreateSplit(pixels, labels, order.AsSpan(0, trainCount));
        var heldOut = CreateSplit(pixels, labels, order.AsSpan(trainCount));
        return new DigitsDataset(train, heldOut, splitSeed);
    }

    /// <summary>
    /// Returns the order in which epoch <paramref name="epoch"/> visits the train set: a permutation of the
    /// positions 0..Train.Count-1 that depends only on (<paramref name="seed"/>, <paramref name="epoch"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="epoch"/> is negative.</exception>
    public int[] GetEpochOrder(long seed, int epoch)
    {
        if (epoch < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "The epoch must be 0 or greater.");
        }

        var order = new int[Train.Count];
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        SplitMix64.ForStream(seed, EpochStream, epoch).Shuffle(order);
        return order;
    }

    /// <summary>
    /// Returns the number of batches in one epoch. Only full batches count: the last Train.Count % batchSize
    /// samples of each epoch's order are skipped, as with torch's <c>DataLoader(drop_last=True)</c>, so every
    /// batch has exactly <paramref name="batchSize"/> samples.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> is not in 1..Train.Count.</exception>
    public int GetBatchCount(int batchSize)
    {
        if (batchSize < 1 || batchSize > Train.Count)
        {
            throw new ArgumentOutOfRangeException(
                nameof(batchSize), batchSize, $"The batch size must be from 1 to the train set size, {Train.Count}.");
        }

        return Train.Count / batchSize;
    }

    /// <summary>
    /// Returns the epoch and the batch within it of optimizer step <paramref name="step"/> (0-based), for a run
    /// that takes one step per batch from epoch 0 on. A run resumed at that step continues with this batch.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range, and the message names it.</exception>
    public (int Epoch, int BatchIndex) LocateStep(long step, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        int batchCount = GetBatchCount(batchSize);

        long epoch = step / batchCount;
        if (epoch > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(
                nameof(step), step, $"Step {step} falls in epoch {epoch}, beyond the largest epoch number {int.MaxValue}.");
        }

        return ((int)epoch, (int)(step % batchCount));
    }

    /// <summary>
    /// Copies batch <paramref name="batchIndex"/> of an epoch into <paramref name="inputs"/> and <paramref name="labels"/>.
    /// The batch size is <c>labels.Length</c>.
    /// </summary>
    /// <param name="epochOrder">The epoch's order from <see cref="GetEpochOrder"/>.</param>
    /// <param name="batchIndex">Batch number within the epoch, below <see cref="GetBatchCount"/>.</param>
    /// <param name="inputs">Destination of the [batchSize, 64] row-major inputs.</param>
    /// <param name="labels">Destination of the batchSize labels.</param>
    /// <exception cref="ArgumentException">A value is out of range or a buffer has the wrong size, and the message names it.</exception>
    public void CopyTrainBatch(ReadOnlySpan<int> epochOrder, int batchIndex, Span<float> inputs, Span<int> labels)
    {
        if (epochOrder.Length != Train.Count)
        {
            throw new ArgumentException(
                $"The epoch order has {epochOrder.Length} positions, expected the train set size {Train.Count}. Pass the array from GetEpochOrder.",
                nameof(epochOrder));
        }

        int batchSize = labels.Length;
        int batchCount = GetBatchCount(batchSize);
        if (batchIndex < 0 || batchIndex >= batchCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(batchIndex), batchIndex, $"An epoch of batch size {batchSize} has batches 0 to {batchCount - 1}.");
        }

        Train.CopyRows(epochOrder.Slice(batchIndex * batchSize, batchSize), inputs, labels);
    }

    private static byte[] ReadEmbeddedResource()
    {
        var assembly = typeof(DigitsDataset).Assembly;
        using Stream? resource = assembly.GetManifestResourceStream(ResourceName);
        if (resource is null)
        {
            throw new InvalidDataException(
                $"The assembly {assembly.GetName().Name} has no embedded resource {ResourceName}. Build the client project, which embeds client/Data/digits.csv.gz.");
        }

        using var buffer = new MemoryStream();
        resource.CopyTo(buffer);
        return buffer.ToArray();
    }

    private static (List<byte> Pixels, List<byte> Labels) ParseCsv(Stream gzipCsv, string sourceName)
    {
        string text = Decompress(gzipCsv, sourceName);

        var pixels = new List<byte>(EmbeddedRowCount * FeatureCount);
        var labels = new List<byte>(EmbeddedRowCount);
        int lineNumber = 0;
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            lineNumber++;
            if (line.IsEmpty)
            {
                continue;
            }

            ParseRow(line, sourceName, lineNumber, pixels, labels);
        }

        if (labels.Count < 2)
        {
            throw new InvalidDataException(
                $"{sourceName} has {labels.Count} data rows, expected at least 2 so that both the train and the held-out set have a sample. {RestoreHint}");
        }

        return (pixels, labels);
    }

    private static string Decompress(Stream gzipCsv, string sourceName)
    {
        using var gzip = new GZipStream(gzipCsv, CompressionMode.Decompress, leaveOpen: true);
        using var text = new MemoryStream();
        var buffer = new byte[81920];
        while (true)
        {
            int read;
            try
            {
                read = gzip.Read(buffer);
            }
            catch (InvalidDataException exception)
            {
                throw new InvalidDataException($"{sourceName} is not valid gzip data: {exception.Message} {RestoreHint}", exception);
            }

            if (read == 0)
            {
                break;
            }

            if (text.Length + read > MaxCsvBytes)
            {
                throw new InvalidDataException(
                    $"{sourceName} decompresses to more than {MaxCsvBytes} bytes, far more than the digits CSV (265 KB). {RestoreHint}");
            }

            text.Write(buffer, 0, read);
        }

        return Encoding.UTF8.GetString(text.GetBuffer(), 0, (int)text.Length);
    }

    private static void ParseRow(ReadOnlySpan<char> text, string sourceName, int lineNumber, List<byte> pixels, List<byte> labels)
    {
        Span<Range> fields = stackalloc Range[FieldsPerRow + 1];
        int fieldCount = text.Split(fields, ',');
        if (fieldCount != FieldsPerRow)
        {
            string found = fieldCount > FieldsPerRow ? $"more than {FieldsPerRow}" : fieldCount.ToString(CultureInfo.InvariantCulture);
            throw new InvalidDataException(
                $"{sourceName}, line {lineNumber}: found {found} comma-separated fields, expected {FieldsPerRow} (64 pixel counts and a label). {RestoreHint}");
        }

        for (int field = 0; field < FieldsPerRow; field++)
        {
            ReadOnlySpan<char> value = text[fields[field]];
            bool isLabel = field == FeatureCount;
            int max = isLabel ? ClassCount - 1 : MaxPixelCount;
            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int number) || number > max)
            {
                string expected = isLabel ? $"a label from 0 to {max}" : $"a pixel count from 0 to {max}";
                string found = value.Length <= 20 ? value.ToString() : $"{value[..20]}...";
                throw new InvalidDataException(
                    $"{sourceName}, line {lineNumber}, field {field + 1}: found '{found}', expected {expected}. {RestoreHint}");
            }

            if (isLabel)
            {
                labels.Add((byte)number);
            }
            else
            {
                pixels.Add((byte)number);
            }
        }
    }

    private static DigitsSplit CreateSplit(List<byte> pixels, List<byte> labels, Span<int> rows)
    {
        rows.Sort();

        var inputs = new float[rows.Length * FeatureCount];
        var splitLabels = new int[rows.Length];
        var sourceRows = rows.ToArray();
        for (int i = 0; i < rows.Length; i++)
        {
            int row = rows[i];
            for (int feature = 0; feature < FeatureCount; feature++)
            {
                // Division by 16 is exact in float32, so every input is k/16 for an integer k in 0..16.
                inputs[(i * FeatureCount) + feature] = pixels[(row * FeatureCount) + feature] / (float)MaxPixelCount;
            }

            splitLabels[i] = labels[row];
        }

        return new DigitsSplit(inputs, splitLabels, sourceRows);
    }
}
