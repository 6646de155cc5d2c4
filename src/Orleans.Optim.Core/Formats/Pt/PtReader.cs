using Orleans.Optim.Python;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Reader of <c>.pt</c> files written by <c>torch.save</c> (zip format, torch 1.6 and later) into the Python value
/// tree of <see cref="PythonValues"/>, without running any code from the file.
/// </summary>
/// <remarks>
/// <para>
/// The pickle may reference only <c>collections.OrderedDict</c>, <c>collections.Counter</c>,
/// <c>torch._utils._rebuild_tensor_v2</c>, <c>torch._utils._rebuild_parameter</c> and the storage classes of
/// <see cref="DType"/>, and, in the one shape that torch 1.13 pickles a <c>OneCycleLR</c> state dict's
/// <c>anneal_func</c>, <c>builtins.getattr</c>, <c>OneCycleLR</c>, the optimizer classes of <c>torch.optim</c>,
/// <c>collections.defaultdict</c> and <c>builtins.dict</c>. The reader returns that <c>anneal_func</c> as a
/// <see cref="PythonBoundMethod"/> and drops the pickled scheduler and optimizer objects. Any other global is
/// rejected before anything is built. Tensors come back as contiguous CPU <see cref="Tensor"/> values:
/// views are copied out of their storage, a <c>Parameter</c> becomes a plain tensor, <c>requires_grad</c> and
/// the device are dropped, and two tensors that shared a storage become independent copies. The same tensor
/// object referenced twice stays one <see cref="Tensor"/> instance, and so does a tensor that a crafted pickle
/// rebuilds twice from the same memoized arguments. The <c>_metadata</c> attribute of a model
/// state dict is kept in <see cref="PythonOrderedDict.Metadata"/>.
/// </para>
/// <para>
/// Every problem in the file raises <see cref="PtFormatException"/>, and <see cref="PtReaderOptions"/> bounds the
/// memory and time a file can cost.
/// </para>
/// </remarks>
public static class PtReader
{
    /// <summary>Reads a <c>.pt</c> file whose root is a dict, such as an optimizer or model state dict.</summary>
    /// <param name="stream">Readable, seekable stream. The archive spans from its current position to its end.</param>
    /// <param name="options">Limits, or null for <see cref="PtReaderOptions.Default"/>.</param>
    /// <returns>The root dict, which is a <see cref="PythonOrderedDict"/> when the file has a <c>collections.OrderedDict</c>.</returns>
    /// <exception cref="ArgumentException">The stream is not readable and seekable.</exception>
    /// <exception cref="PtFormatException">The file is invalid, unsupported, unsafe or over a limit.</exception>
    public static OrderedDictionary<object, object?> Read(Stream stream, PtReaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead || !stream.CanSeek)
        {
            throw new ArgumentException(
                "Reading a .pt file needs a readable, seekable stream, because the zip directory is at its end. Copy the data to a file or a MemoryStream first.",
                nameof(stream));
        }

        options ??= PtReaderOptions.Default;
        var archive = PtArchive.Open(stream);
        if (!archive.TryGetRecord("data.pkl", out var pickleEntry))
        {
            throw new PtFormatException(
                $"The zip archive has no '{archive.FullName("data.pkl")}' entry, which contains the pickled object of every .pt file. " +
                "The file is incomplete or is a TorchScript archive. Save the state dict with torch.save.",
                archive.FullName("data.pkl"));
        }

        if (pickleEntry.Size > options.MaxPickleBytes)
        {
            throw new PtFormatException(
                $"Entry '{pickleEntry.Name}' has {pickleEntry.Size} bytes, more than the MaxPickleBytes limit of {options.MaxPickleBytes}. " +
                "Raise PtReaderOptions.MaxPickleBytes if you trust the file.",
                pickleEntry.Name);
        }

        byte[] pickle = archive.Zip.ReadAll(pickleEntry);
        var tensors = new TensorLoader(archive, options, pickleEntry.Name);
        object? root = new RestrictedUnpickler(pickle, pickleEntry.Name, options, tensors).Load();
        if (root is not OrderedDictionary<object, object?> dict)
        {
            throw new PtFormatException(
                $"The root object in {pickleEntry.Name} is {RestrictedUnpickler.Describe(root)}, but a dict such as an optimizer or model state dict is expected. " +
                "Save a state dict, for example torch.save(optimizer.state_dict(), path).",
                pickleEntry.Name);
        }

        PickleTreeValidator.Validate(root, options.MaxNestingDepth, options.MaxExpandedValues, pickleEntry.Name);
        tensors.FillTensors();
        return dict;
    }

    /// <summary>Reads the <c>.pt</c> file at <paramref name="path"/> as <see cref="Read"/> does.</summary>
    /// <exception cref="PtFormatException">The file is invalid, unsupported, unsafe or over a limit. The message starts with the path.</exception>
    /// <exception cref="IOException">The file cannot be opened or read.</exception>
    public static OrderedDictionary<object, object?> ReadFile(string path, PtReaderOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        try
        {
            return Read(stream, options);
        }
        catch (PtFormatException ex)
        {
            throw new PtFormatException($"{path}: {ex.Message}", ex.EntryName, ex.Position, ex);
        }
    }
}
