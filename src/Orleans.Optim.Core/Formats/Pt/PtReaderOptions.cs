namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Limits that <see cref="PtReader"/> enforces so that a hostile or broken file fails fast with bounded memory and time.
/// </summary>
/// <remarks>
/// The defaults fit optimizer and model state dicts of several GiB. Raise them only for files you trust.
/// Independently of these limits, the reader never allocates more for a tensor than its storage record in the
/// zip actually contains. Tensors take at most <see cref="MaxTotalBytes"/> in all and at most
/// <see cref="MaxStorageCopies"/> times the size of the storage records they view, which lie in the file. The
/// values that the pickle builds take up to about 105 bytes per byte of <c>data.pkl</c>, the rate measured on
/// .NET 10 for a pickle made only of EMPTY_DICT opcodes.
/// </remarks>
public sealed class PtReaderOptions
{
    private long _maxTensorBytes = Array.MaxLength;
    private long _maxTotalBytes = 8L << 30;
    private int _maxPickleBytes = 16 << 20;
    private int _maxNestingDepth = 100;
    private int _maxContainerItems = 1 << 20;
    private long _maxExpandedValues = 1 << 24;
    private int _maxStorageCopies = 16;

    /// <summary>Options with the default limits.</summary>
    public static PtReaderOptions Default { get; } = new();

    /// <summary>
    /// Maximum size in bytes of one tensor after it is made contiguous. Default and maximum: <see cref="Array.MaxLength"/>
    /// (about 2 GiB), the largest <c>byte[]</c> that .NET allows.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive or exceeds <see cref="Array.MaxLength"/>.</exception>
    public long MaxTensorBytes
    {
        get => _maxTensorBytes;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, Array.MaxLength);
            _maxTensorBytes = value;
        }
    }

    /// <summary>
    /// Maximum total size in bytes of all tensors in the file after they are made contiguous. Default: 8 GiB.
    /// Tensors that share one storage each count in full.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive.</exception>
    public long MaxTotalBytes
    {
        get => _maxTotalBytes;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _maxTotalBytes = value;
        }
    }

    /// <summary>
    /// Maximum size in bytes of the <c>data.pkl</c> entry. Default: 16 MiB. torch 1.13 pickles a state dict in about
    /// 90 to 150 bytes per tensor, so the default leaves room for about 100,000 tensors.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive or exceeds <see cref="Array.MaxLength"/>.</exception>
    public int MaxPickleBytes
    {
        get => _maxPickleBytes;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, Array.MaxLength);
            _maxPickleBytes = value;
        }
    }

    /// <summary>
    /// Maximum number of containers (dict, list, tuple, OrderedDict) on any path from the root, the root included.
    /// Default: 100, which matches the depth limit of <see cref="PtWriter"/>. A state dict has a depth of about 4.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive.</exception>
    public int MaxNestingDepth
    {
        get => _maxNestingDepth;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _maxNestingDepth = value;
        }
    }

    /// <summary>Maximum number of items in one dict, list or tuple. Default: 1,048,576.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive.</exception>
    public int MaxContainerItems
    {
        get => _maxContainerItems;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _maxContainerItems = value;
        }
    }

    /// <summary>
    /// Maximum number of values (containers, keys and items) in the returned tree when a container that several
    /// parents share counts once for each parent. Default: 16,777,216. A pickle can share one tuple at every level
    /// of a deep value, which doubles its expanded size per level, and code that walks the value, such as
    /// formatting it for a message, would then run for an exponential time. A state dict shares few containers, so
    /// its expanded size is about its number of values.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive.</exception>
    public long MaxExpandedValues
    {
        get => _maxExpandedValues;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _maxExpandedValues = value;
        }
    }

    /// <summary>
    /// Maximum total size of the tensors that view one storage, as a multiple of the storage's size. Default: 16.
    /// The reader copies each view into its own tensor, so without this limit a few bytes of pickle that rebuild
    /// a view again and again would make a small file allocate up to <see cref="MaxTotalBytes"/>. A tensor saved
    /// with a few views of it stays far below the default.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive.</exception>
    public int MaxStorageCopies
    {
        get => _maxStorageCopies;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _maxStorageCopies = value;
        }
    }
}
