using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Resolves storage persistent ids against the archive, creates contiguous tensors for
/// <c>_rebuild_tensor_v2</c> calls after checking them against their storage and the limits, and then fills them
/// from the storage records.
/// </summary>
/// <remarks>
/// Tensors are allocated while unpickling, once their byte size is known to fit in the actual record, and filled
/// after the whole pickle has been checked. Each storage record is read once, in chunks, however many tensors
/// view it. Tensors that share a storage become independent copies.
/// </remarks>
internal sealed class TensorLoader
{
    /// <summary>Longest storage key accepted. torch.save names storages with decimal numbers such as <c>0</c>.</summary>
    private const int MaxStorageKeyLength = 100;

    private readonly PtArchive _archive;
    private readonly PtReaderOptions _options;
    private readonly string _pickleEntryName;
    private readonly Dictionary<string, StorageReference> _storages = new(StringComparer.Ordinal);
    private readonly List<PendingTensor> _pending = [];
    private long _totalBytes;

    /// <summary>Creates a loader for the storages of one archive.</summary>
    public TensorLoader(PtArchive archive, PtReaderOptions options, string pickleEntryName)
    {
        _archive = archive;
        _options = options;
        _pickleEntryName = pickleEntryName;
    }

    /// <summary>
    /// Returns the storage that a persistent id <c>('storage', torch.XStorage, key, location, numel)</c> names,
    /// after checking that its record exists and contains at least <c>numel</c> elements.
    /// </summary>
    /// <remarks>The location, such as <c>cuda:0</c>, is ignored: every tensor loads on the CPU.</remarks>
    /// <exception cref="PtFormatException">The id is malformed, the record is missing or too short, or the key was used with another dtype.</exception>
    public StorageReference LoadStorage(object? persistentId, long position)
    {
        if (persistentId is not object?[] { Length: 5 } fields
            || fields[0] is not "storage"
            || fields[1] is not TorchGlobal { Kind: TorchGlobalKind.StorageClass } storageClass
            || fields[2] is not string key
            || fields[3] is not string
            || fields[4] is not long numElements)
        {
            throw Fail(
                $"The persistent id {RestrictedUnpickler.Describe(persistentId)} is not a torch storage reference " +
                "('storage', torch.<X>Storage, key, location, numel). The file is corrupt or was not written by torch.save.",
                position);
        }

        // The key is hashed on every lookup, and a memoized key costs the pickle only a few bytes per lookup.
        if (key.Length > MaxStorageKeyLength)
        {
            throw Fail(
                $"Storage key '{TorchGlobal.Printable(key)}' has {key.Length} characters, but torch.save names storages with short decimal numbers such as '0'. " +
                "The file is corrupt or was not written by torch.save.",
                position);
        }

        DType dtype = storageClass.DType;
        if (_storages.TryGetValue(key, out var known))
        {
            if (known.DType != dtype || known.NumElements != numElements)
            {
                throw Fail(
                    $"Storage '{TorchGlobal.Printable(key)}' is declared as {numElements} {dtype.TorchName()} elements, but earlier as " +
                    $"{known.NumElements} {known.DType.TorchName()} elements. The file is corrupt or was not written by torch.save.",
                    position);
            }

            return known;
        }

        string record = "data/" + key;
        if (!_archive.TryGetRecord(record, out var entry))
        {
            throw new PtFormatException(
                $"The zip archive has no entry '{_archive.FullName(TorchGlobal.Printable(record))}', which {_pickleEntryName} references at byte {position} " +
                "as the storage of a tensor. The file is incomplete or was not written by torch.save. Re-save it with torch.save.",
                _archive.FullName(record));
        }

        long byteCount;
        try
        {
            byteCount = numElements < 0 ? throw new OverflowException() : checked(numElements * dtype.ElementSize());
        }
        catch (OverflowException)
        {
            throw Fail($"Storage '{TorchGlobal.Printable(key)}' declares {numElements} elements, which is not a valid size. The file is corrupt.", position);
        }

        if (entry.Size < byteCount)
        {
            throw Fail(
                $"Storage '{TorchGlobal.Printable(key)}' declares {numElements} {dtype.TorchName()} elements ({byteCount} bytes), " +
                $"but entry '{entry.Name}' has only {entry.Size} bytes. The file is truncated or corrupt. Re-create it.",
                position);
        }

        // Checks now that the record lies inside the file, so that a lying directory fails before any allocation.
        _archive.Zip.GetDataOffset(entry);
        var storage = new StorageReference(key, dtype, numElements, entry);
        _storages.Add(key, storage);
        return storage;
    }

    /// <summary>
    /// Creates an empty contiguous tensor for a view of <paramref name="storage"/> after checking that the view lies
    /// inside the storage and that its size fits the limits. <see cref="FillTensors"/> copies the data later.
    /// </summary>
    /// <exception cref="PtFormatException">The view is invalid, lies outside the storage, or exceeds a limit.</exception>
    public Tensor RebuildTensor(StorageReference storage, long storageOffset, long[] shape, long[] stride, long position)
    {
        if (shape.Length != stride.Length || storageOffset < 0 || shape.Any(size => size < 0) || stride.Any(step => step < 0))
        {
            throw Fail(
                $"A tensor {View()} is invalid: size and stride need the same length, and no size, stride or offset may be negative. " +
                "The file is corrupt or was not written by torch.save.",
                position);
        }

        int elementSize = storage.DType.ElementSize();
        long numElements;
        long byteCount;
        long lastElement;
        try
        {
            numElements = Tensor.CountElements(shape);
            byteCount = checked(numElements * elementSize);
            lastElement = storageOffset;
            if (numElements > 0)
            {
                for (int d = 0; d < shape.Length; d++)
                {
                    lastElement = checked(lastElement + ((shape[d] - 1) * stride[d]));
                }
            }
        }
        catch (OverflowException)
        {
            throw Fail($"A tensor {View()} has more elements or a larger extent than 64-bit integers hold. The file is corrupt.", position);
        }

        if (byteCount > storage.ByteCount)
        {
            throw Fail(
                $"A {storage.DType.TorchName()} tensor {View()} needs {byteCount} bytes, more than the {storage.ByteCount} bytes of its storage. " +
                "Either the file is corrupt, or the tensor is an expanded view (stride 0), which this reader does not load; " +
                "call .contiguous() on such tensors before torch.save.",
                position);
        }

        if (numElements > 0 ? lastElement >= storage.NumElements : storageOffset > storage.NumElements)
        {
            throw Fail(
                $"A tensor {View()} reaches element {lastElement}, outside its storage of {storage.NumElements} elements. " +
                "The file is corrupt or was not written by torch.save.",
                position);
        }

        if (byteCount > _options.MaxTensorBytes)
        {
            throw Fail(
                $"A tensor {View()} has {byteCount} bytes, more than the MaxTensorBytes limit of {_options.MaxTensorBytes}. " +
                "Raise PtReaderOptions.MaxTensorBytes if you trust the file.",
                position);
        }

        if (byteCount > _options.MaxTotalBytes - _totalBytes)
        {
            throw Fail(
                $"The tensors up to the one {View()} have more than the MaxTotalBytes limit of {_options.MaxTotalBytes} bytes in all. " +
                "Raise PtReaderOptions.MaxTotalBytes if you trust the file.",
                position);
        }

        long copyBudget = storage.ByteCount > long.MaxValue / _options.MaxStorageCopies ? long.MaxValue : storage.ByteCount * _options.MaxStorageCopies;
        if (byteCount > copyBudget - storage.CopiedBytes)
        {
            throw Fail(
                $"The tensors up to the one {View()} copy more than {_options.MaxStorageCopies} times the {storage.ByteCount} bytes of the storage, " +
                "the MaxStorageCopies limit. torch.save writes a tensor once however often the state dict references it, so the file may be crafted. " +
                "Raise PtReaderOptions.MaxStorageCopies if you trust the file.",
                position);
        }

        _totalBytes += byteCount;
        storage.CopiedBytes += byteCount;
        var tensor = new Tensor(storage.DType, shape, new byte[byteCount]);
        _pending.Add(new PendingTensor(tensor, storage, storageOffset, stride));
        return tensor;

        string View() =>
            $"with size {Tensor.FormatShape(shape)}, stride {Tensor.FormatShape(stride)} and offset {storageOffset} on storage '{TorchGlobal.Printable(storage.Key)}'";
    }

    /// <summary>Reads each storage record that a tensor uses, checks its CRC-32 and copies the views into their tensors.</summary>
    /// <exception cref="PtFormatException">A record fails its CRC check or is truncated.</exception>
    public void FillTensors()
    {
        foreach (var group in _pending.GroupBy(pending => pending.Storage))
        {
            FillFromStorage(group.Key, group.ToList());
        }
    }

    private void FillFromStorage(StorageReference storage, List<PendingTensor> tensors)
    {
        int elementSize = storage.DType.ElementSize();
        var contiguous = tensors.Where(t => t.IsContiguous && t.Tensor.Data.Length > 0).OrderBy(t => t.StorageOffset).ToList();
        var strided = tensors.Where(t => !t.IsContiguous).ToList();

        // Strided views need random access, so the part of the storage that they span is kept in a buffer.
        long windowStart = 0;
        byte[]? window = null;
        if (strided.Count > 0)
        {
            windowStart = strided.Min(t => t.StorageOffset) * elementSize;
            long windowEnd = strided.Max(t => t.LastElement() + 1) * elementSize;

            // NOTE: strided views that span more than Array.MaxLength bytes of one storage are rejected rather than gathered in pieces.
            if (windowEnd - windowStart > Array.MaxLength)
            {
                throw new PtFormatException(
                    $"Non-contiguous tensors on storage '{TorchGlobal.Printable(storage.Key)}' span {windowEnd - windowStart} bytes, more than this reader can buffer. " +
                    "Call .contiguous() on them before torch.save.",
                    storage.Entry.Name);
            }

            window = new byte[windowEnd - windowStart];
        }

        // Each chunk visits only the contiguous tensors that overlap it, so a storage of many chunks viewed by many
        // small tensors costs time in proportion to the chunks plus the tensors, not to their product.
        int nextToStart = 0;
        var overlapping = new List<PendingTensor>();
        _archive.Zip.ReadEntry(storage.Entry, (chunk, chunkOffset) =>
        {
            long chunkEnd = chunkOffset + chunk.Length;
            while (nextToStart < contiguous.Count && contiguous[nextToStart].StorageOffset * elementSize < chunkEnd)
            {
                overlapping.Add(contiguous[nextToStart++]);
            }

            int remaining = 0;
            for (int i = 0; i < overlapping.Count; i++)
            {
                var pending = overlapping[i];
                long start = pending.StorageOffset * elementSize;
                CopyOverlap(chunk, chunkOffset, pending.Tensor.Data, start);
                if (start + pending.Tensor.Data.Length > chunkEnd)
                {
                    overlapping[remaining++] = pending;
                }
            }

            overlapping.RemoveRange(remaining, overlapping.Count - remaining);
            if (window is not null)
            {
                CopyOverlap(chunk, chunkOffset, window, windowStart);
            }
        });

        foreach (var pending in strided)
        {
            pending.Gather(window!, windowStart / elementSize);
        }
    }

    /// <summary>Copies the part of a chunk at <paramref name="chunkOffset"/> that overlaps a target placed at <paramref name="targetOffset"/>.</summary>
    private static void CopyOverlap(ReadOnlySpan<byte> chunk, long chunkOffset, byte[] target, long targetOffset)
    {
        long start = Math.Max(chunkOffset, targetOffset);
        long end = Math.Min(chunkOffset + chunk.Length, targetOffset + target.LongLength);
        if (start < end)
        {
            chunk.Slice((int)(start - chunkOffset), (int)(end - start)).CopyTo(target.AsSpan((int)(start - targetOffset)));
        }
    }

    private PtFormatException Fail(string message, long position) => new(message, _pickleEntryName, position);

    /// <summary>A tensor waiting for its data, with the view that selects it from its storage.</summary>
    private sealed record PendingTensor(Tensor Tensor, StorageReference Storage, long StorageOffset, long[] Stride)
    {
        /// <summary>Whether the view is row-major contiguous, ignoring dimensions of size 1 as torch does.</summary>
        public bool IsContiguous
        {
            get
            {
                long[] shape = Tensor.Shape;
                if (Tensor.NumElements == 0)
                {
                    return true;
                }

                long expected = 1;
                for (int d = shape.Length - 1; d >= 0; d--)
                {
                    if (shape[d] != 1 && Stride[d] != expected)
                    {
                        return false;
                    }

                    expected *= shape[d];
                }

                return true;
            }
        }

        /// <summary>Returns the storage index of the last element of a non-empty view.</summary>
        public long LastElement()
        {
            long last = StorageOffset;
            for (int d = 0; d < Stride.Length; d++)
            {
                last += (Tensor.Shape[d] - 1) * Stride[d];
            }

            return last;
        }

        /// <summary>Copies the elements of the view, in row-major order, from a buffer that starts at storage element <paramref name="windowElement"/>.</summary>
        public void Gather(byte[] window, long windowElement)
        {
            long[] shape = Tensor.Shape;
            int elementSize = Tensor.DType.ElementSize();
            var destination = Tensor.Data.AsSpan();
            int rank = shape.Length;

            // A strided view is non-empty and has rank 1 or more. Its innermost dimension is copied as one run when its stride is 1.
            long innerSize = shape[rank - 1];
            long innerStride = Stride[rank - 1];
            var index = new long[rank - 1];
            long outerCount = Tensor.NumElements / innerSize;
            long written = 0;
            for (long outer = 0; outer < outerCount; outer++)
            {
                long element = StorageOffset - windowElement;
                for (int d = 0; d < rank - 1; d++)
                {
                    element += index[d] * Stride[d];
                }

                if (innerStride == 1)
                {
                    int length = (int)(innerSize * elementSize);
                    window.AsSpan((int)(element * elementSize), length).CopyTo(destination[(int)written..]);
                    written += length;
                }
                else
                {
                    for (long j = 0; j < innerSize; j++)
                    {
                        window.AsSpan((int)((element + (j * innerStride)) * elementSize), elementSize).CopyTo(destination[(int)written..]);
                        written += elementSize;
                    }
                }

                for (int d = rank - 2; d >= 0; d--)
                {
                    if (++index[d] < shape[d])
                    {
                        break;
                    }

                    index[d] = 0;
                }
            }
        }
    }
}
