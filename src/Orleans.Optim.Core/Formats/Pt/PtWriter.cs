using System.Text;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Writer of <c>.pt</c> files that <c>torch.load</c> reads as torch 1.13's <c>torch.save</c> would have written
/// them, from the Python value tree of <see cref="PythonValues"/>.
/// </summary>
/// <remarks>
/// <para>
/// The file is an uncompressed zip with every entry in one folder: <c>data.pkl</c> (pickle protocol 2), then
/// <c>data/0</c> to <c>data/N</c> with the little-endian bytes of each tensor, then <c>version</c> (<c>3</c>).
/// Entry data is aligned to 64 bytes, and zip64 records are written where sizes or offsets need them.
/// </para>
/// <para>
/// Each distinct <see cref="Tensor"/> or <see cref="StreamedTensor"/> instance gets its own storage, keyed in the
/// order the pickle first reaches it. An instance that occurs twice loads as one tensor object in Python.
/// A <see cref="PythonOrderedDict"/> becomes a <c>collections.OrderedDict</c> with its
/// <see cref="PythonOrderedDict.Metadata"/> as the <c>_metadata</c> attribute, and keys keep their order.
/// </para>
/// </remarks>
public static class PtWriter
{
    /// <summary>Writes <paramref name="root"/>, such as an optimizer or model state dict, as a <c>.pt</c> archive.</summary>
    /// <param name="output">
    /// Writable stream. The archive starts at its current position. It must also be seekable when the tree
    /// contains a <see cref="StreamedTensor"/>.
    /// </param>
    /// <param name="root">Root dict. A <see cref="PythonOrderedDict"/> is written as <c>collections.OrderedDict</c>.</param>
    /// <param name="options">Settings, or null for <see cref="PtWriterOptions.Default"/>.</param>
    /// <exception cref="ArgumentException">
    /// The stream cannot be written (or sought, for streamed tensors), or the tree contains a value with no Python
    /// equivalent, a cycle, colliding keys, or more than 100 levels of containers. Nothing is written then.
    /// </exception>
    /// <exception cref="InvalidOperationException">
    /// A <see cref="StreamedTensor"/> callback wrote the wrong number of bytes. The stream then contains a partial archive.
    /// </exception>
    public static void Write(Stream output, OrderedDictionary<object, object?> root, PtWriterOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(root);
        options ??= PtWriterOptions.Default;
        if (!output.CanWrite)
        {
            throw new ArgumentException("The output stream is not writable. Pass a stream opened for writing.", nameof(output));
        }

        var builder = new PickleTreeBuilder();
        object tree = builder.Build(root);
        if (builder.HasStreamedTensors && !output.CanSeek)
        {
            throw new ArgumentException(
                "The state contains a StreamedTensor, which needs a seekable output stream to store the CRC-32 after the data. " +
                "Write to a file, or use in-memory Tensor values.",
                nameof(output));
        }

        var (pickle, storages) = TorchPickler.Pickle(tree);

        string folder = options.ArchiveName + "/";
        var zip = new ZipStoreWriter(output, options.ForceZip64);
        zip.AddEntry(folder + "data.pkl", pickle);
        foreach (var node in storages)
        {
            string name = folder + "data/" + node.StorageKey;
            if (node.Streamed is { } streamed)
            {
                zip.AddEntry(name, streamed.ByteCount, streamed.WriteData, streamed.ToString());
            }
            else
            {
                zip.AddEntry(name, node.Tensor!.Data);
            }
        }

        zip.AddEntry(folder + "version", Encoding.ASCII.GetBytes("3\n"));
        zip.Finish();
    }

    /// <summary>
    /// Writes <paramref name="root"/> to the file at <paramref name="path"/> through a temporary file in the same
    /// folder, so that a failure leaves any existing file unchanged, flushed to the disk unless
    /// <see cref="PtWriterOptions.FlushToDisk"/> is off. Otherwise it works as <see cref="Write"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The tree is invalid, as listed for <see cref="Write"/>.</exception>
    /// <exception cref="InvalidOperationException">A <see cref="StreamedTensor"/> callback wrote the wrong number of bytes.</exception>
    /// <exception cref="IOException">The file cannot be written, or its folder does not exist.</exception>
    public static void WriteFile(string path, OrderedDictionary<object, object?> root, PtWriterOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(fullPath) ?? ".";
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"Cannot write '{path}': the folder '{folder}' does not exist. Create it first, or give a path in an existing folder.");
        }

        string temporaryPath = Path.Combine(folder, "." + Path.GetFileName(fullPath) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var stream = new FileStream(temporaryPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 16))
            {
                Write(stream, root, options);
                stream.Flush(flushToDisk: (options ?? PtWriterOptions.Default).FlushToDisk);
            }

            File.Move(temporaryPath, fullPath, overwrite: true);
        }
        finally
        {
            File.Delete(temporaryPath);
        }
    }
}
