using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;
using static Orleans.Optim.Tests.Pt.PtArchiveBuilder;

namespace Orleans.Optim.Tests.Pt;

/// <summary>
/// Files whose declared sizes, offsets, counts or sharing would cost far more memory or time than their size:
/// each fails fast with its own error, or reads within the limits of <see cref="PtReaderOptions"/>.
/// </summary>
public sealed class PtReaderLimitTests
{
    private const string PickleEntry = "archive/data.pkl";

    [Fact]
    public void SharedTupleNestingRejected()
    {
        // Each level is a 2-tuple that contains the level below twice, so 60 levels expand to 2**60 values.
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x").Op(PickleOpcodes.None);
        for (int level = 0; level < 60; level++)
        {
            pickle.Op(PickleOpcodes.Dup).Op(PickleOpcodes.Tuple2);
        }

        byte[] file = PtFile(pickle.Op(PickleOpcodes.SetItem).Stop());

        var (error, allocated, elapsed) = Measure(() => ReadFails(file));

        Assert.StartsWith($"{PickleEntry} builds a value of more than 16777216 items when each shared container is counted once per reference", error.Message);
        Assert.Contains("the MaxExpandedValues limit", error.Message);
        Assert.True(allocated < 1 << 20, $"Rejecting allocated {allocated} bytes.");
        Assert.True(elapsed < TimeSpan.FromSeconds(2), $"Rejecting took {elapsed}.");
    }

    [Theory]
    [InlineData(2, 9)]
    [InlineData(3, 12)]
    public void ExpandedValuesCountSharedTupleOncePerReference(int references, int expandedValues)
    {
        // {'x': [t, t, ...]} with t = (1, 2): the dict, the key, the list, and 3 values for each reference to t.
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x").Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.Mark)
            .Int(1).Int(2).Op(PickleOpcodes.Tuple2).Op(PickleOpcodes.BinPut, 0);
        for (int i = 1; i < references; i++)
        {
            pickle.Op(PickleOpcodes.BinGet, 0);
        }

        byte[] file = PtFile(pickle.Op(PickleOpcodes.Appends).Op(PickleOpcodes.SetItem).Stop());

        var root = PtReader.Read(new MemoryStream(file), new PtReaderOptions { MaxExpandedValues = expandedValues });
        var error = Assert.Throws<PtFormatException>(() => PtReader.Read(new MemoryStream(file), new PtReaderOptions { MaxExpandedValues = expandedValues - 1 }));

        var list = Assert.IsType<List<object?>>(root["x"]);
        Assert.Equal(references, list.Count);
        Assert.Same(list[0], list[^1]);
        Assert.Contains($"builds a value of more than {expandedValues - 1} items", error.Message);
    }

    [Fact]
    public void RepeatedRebuildCallReturnsSameTensor()
    {
        // torch pickles a tensor once, so a second call with the same memoized arguments gets the same tensor, not a copy.
        byte[] pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Global("torch._utils", "_rebuild_tensor_v2").Op(PickleOpcodes.BinPut, 0).Op(PickleOpcodes.Pop)
            .Str("a").Op(PickleOpcodes.BinGet, 0).Op(PickleOpcodes.Mark)
            .Op(PickleOpcodes.Mark).Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(2).Op(PickleOpcodes.Tuple).Op(PickleOpcodes.BinPersId)
            .Int(0).IntTuple(2).IntTuple(1).Op(PickleOpcodes.NewFalse).Global("collections", "OrderedDict").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce)
            .Op(PickleOpcodes.Tuple).Op(PickleOpcodes.BinPut, 1).Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem)
            .Str("b").Op(PickleOpcodes.BinGet, 0).Op(PickleOpcodes.BinGet, 1).Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem).Stop();

        var root = PtReader.Read(new MemoryStream(PtFile(pickle, ("0", Floats(1f, 2f)))));

        Assert.Same(root["a"], root["b"]);
        Assert.Equal([1f, 2f], Assert.IsType<Tensor>(root["a"]).AsFloats().ToArray());
    }

    [Theory]
    [InlineData(16, true)]
    [InlineData(17, false)]
    public void ViewsOfOneStorageLimitedToStorageCopies(int views, bool accepted)
    {
        byte[] file = PtFile(ViewsOfOneStorage(views, storageElements: 4), ("0", Floats(1f, 2f, 3f, 4f)));

        if (accepted)
        {
            var root = PtReader.Read(new MemoryStream(file));
            Assert.Equal(views, Assert.IsType<List<object?>>(root["views"]).Count);
        }
        else
        {
            var error = ReadFails(file);
            Assert.Contains("copy more than 16 times the 16 bytes of the storage, the MaxStorageCopies limit", error.Message);
        }
    }

    [Fact]
    public void StorageCopiesLimitAppliesToTorchViews()
    {
        // views_state.pt has views that together are larger than their storage, as torch saves them.
        var error = Assert.Throws<PtFormatException>(() => PtReader.ReadFile(PtFixtures.PathOf("views_state.pt"), new PtReaderOptions { MaxStorageCopies = 1 }));

        Assert.Contains("copy more than 1 times", error.Message);
    }

    [Fact]
    public void ManyCopiesOfLargeStorageFailFast()
    {
        // 2,000 views of a 64 KiB storage would allocate 128 MiB from a file of about 100 KiB.
        byte[] file = PtFile(ViewsOfOneStorage(2000, storageElements: 16_384), ("0", new byte[65_536]));

        var (error, allocated, _) = Measure(() => ReadFails(file));

        Assert.Contains("the MaxStorageCopies limit", error.Message);
        Assert.True(allocated < 4 << 20, $"Rejecting allocated {allocated} bytes.");
    }

    [Theory]
    [InlineData(1L << 62, new long[] { 1 }, new long[] { 1 }, "reaches element 4611686018427387904, outside its storage of 4 elements")]
    [InlineData(0L, new long[] { 3 }, new long[] { 1L << 62 }, "has more elements or a larger extent than 64-bit integers hold")]
    [InlineData(-1L, new long[] { 1 }, new long[] { 1 }, "no size, stride or offset may be negative")]
    [InlineData(0L, new long[] { 2 }, new long[] { -1 }, "no size, stride or offset may be negative")]
    [InlineData(0L, new long[] { -2 }, new long[] { 1 }, "no size, stride or offset may be negative")]
    [InlineData(0L, new long[] { 1L << 32, 1L << 32, 1L << 32 }, new long[] { 0, 0, 0 }, "has more elements or a larger extent than 64-bit integers hold")]
    [InlineData(0L, new long[] { 1L << 31, 1L << 31 }, new long[] { 1L << 31, 1 }, "has more elements or a larger extent than 64-bit integers hold")]
    [InlineData(0L, new long[] { 2, 3 }, new long[] { 1 }, "size and stride need the same length")]
    public void AbsurdViewRejected(long offset, long[] shape, long[] stride, string expected)
    {
        byte[] file = PtFile(RootWithTensor(p => p.Tensor("0", 4, shape, stride, offset)), ("0", Floats(1f, 2f, 3f, 4f)));

        var (error, allocated, _) = Measure(() => ReadFails(file));

        Assert.Contains(expected, error.Message);
        Assert.True(allocated < 1 << 20, $"Rejecting allocated {allocated} bytes.");
    }

    [Fact]
    public void EmptyTensorWithHugeSizesReads()
    {
        // A zero size makes the tensor empty however large the other sizes are, as in torch.
        byte[] file = PtFile(RootWithTensor(p => p.Tensor("0", 4, [0, 1L << 62, 1L << 62], [0, 0, 0])), ("0", Floats(1f, 2f, 3f, 4f)));

        var tensor = Assert.IsType<Tensor>(PtReader.Read(new MemoryStream(file))["t"]);

        Assert.Equal([0L, 1L << 62, 1L << 62], tensor.Shape);
        Assert.Empty(tensor.Data);
    }

    [Fact]
    public void ContiguousViewsAcrossChunksRead()
    {
        // The reader copies storages in 1 MiB chunks (262,144 float32 elements). These views start, end or lie
        // across chunk borders, and one is empty.
        const int Elements = 3 * 262_144;
        float[] values = Enumerable.Range(0, Elements).Select(i => (float)i).ToArray();
        (long Offset, long Length)[] views = [(0, Elements), (262_140, 10), (524_287, 2), (262_144, 0), (786_430, 2), (100, 600_000)];
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict);
        for (int i = 0; i < views.Length; i++)
        {
            pickle.Str("v" + i).Tensor("0", Elements, [views[i].Length], [1], views[i].Offset).Op(PickleOpcodes.SetItem);
        }

        var root = PtReader.Read(new MemoryStream(PtFile(pickle.Stop(), ("0", Floats(values)))));

        for (int i = 0; i < views.Length; i++)
        {
            var tensor = Assert.IsType<Tensor>(root["v" + i]);
            Assert.Equal(values.AsSpan((int)views[i].Offset, (int)views[i].Length).ToArray(), tensor.AsFloats().ToArray());
        }
    }

    [Theory]
    [InlineData(PickleOpcodes.Int, "")]
    [InlineData(PickleOpcodes.Long, "L")]
    public void HugeIntegerLineRejectedQuickly(byte opcode, string suffix)
    {
        // 8 million digits: a quadratic parse of this line takes tens of seconds.
        byte[] line = Encoding.ASCII.GetBytes("-" + new string('9', 8_000_000) + suffix + "\n");
        byte[] file = PtFile(PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("n").Op(opcode, line).Op(PickleOpcodes.SetItem).Stop());

        var (error, _, elapsed) = Measure(() => ReadFails(file));

        Assert.Contains($"An int in {PickleEntry} at byte 9 is outside the 64-bit range", error.Message);
        Assert.True(elapsed < TimeSpan.FromSeconds(5), $"Rejecting took {elapsed}.");
    }

    [Fact]
    public void LongStorageKeyRejected()
    {
        // A key as long as a zip entry name allows would be hashed again for every persistent id that repeats it.
        string key = new('7', 60_000);
        byte[] file = PtFile(RootWithTensor(p => p.Tensor(key, 1, [1])), (key, Floats(1f)));

        var error = ReadFails(file);

        Assert.Contains("has 60000 characters, but torch.save names storages with short decimal numbers such as '0'", error.Message);
    }

    [Fact]
    public void ModelStateRejectedAsOptimizerState()
    {
        string path = PtFixtures.PathOf("model_state.pt");

        var error = Assert.Throws<StateDictException>(() => StateDictFiles.ReadOptimizer(path));

        Assert.StartsWith($"{path}: Expected key 'state' holding a dict, found no such key; the root has keys ['0.weight', '0.bias',", error.Message);
        Assert.Contains("Is this an optimizer state dict?", error.Message);
    }

    [Fact]
    public void DictWithListStateRejectedAsOptimizerState()
    {
        string folder = PtFixtures.NewTemporaryFolder();
        string path = Path.Combine(folder, "list_state.pt");
        byte[] pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Str("state").Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.SetItem)
            .Str("param_groups").Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.SetItem).Stop();
        File.WriteAllBytes(path, PtFile(pickle));

        try
        {
            var error = Assert.Throws<StateDictException>(() => StateDictFiles.ReadOptimizer(path));

            Assert.Equal($"{path}: Expected key 'state' holding a dict, found list; the root has keys ['state', 'param_groups']. Is this an optimizer state dict?", error.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void OptimizerStateRejectedAsModelState()
    {
        string path = PtFixtures.PathOf("adam_state.pt");

        var error = Assert.Throws<StateDictException>(() => StateDictFiles.ReadModel(path));

        Assert.StartsWith($"{path}: expected a model state dict (parameter names to tensors), found key 'state' with a dict.", error.Message);
    }

    [Fact]
    public void ManyRootKeysShortenStateDictMessage()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Op(PickleOpcodes.Mark);
        for (int i = 0; i < 100_000; i++)
        {
            pickle.Int(i).Op(PickleOpcodes.None);
        }

        var root = PtReader.Read(new MemoryStream(PtFile(pickle.Op(PickleOpcodes.SetItems).Stop())));
        var error = Assert.Throws<StateDictException>(() => OptimizerStateDict.FromPython(root));

        Assert.Contains("the root has keys [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] and 99990 more.", error.Message);
        Assert.True(error.Message.Length < 500, $"The message has {error.Message.Length} characters.");
    }

    [Fact]
    public void LongRootKeysShortenStateDictMessage()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict);
        foreach (char letter in "abc")
        {
            pickle.Str(new string(letter, 5000)).Op(PickleOpcodes.None).Op(PickleOpcodes.SetItem);
        }

        var root = PtReader.Read(new MemoryStream(PtFile(pickle.Stop())));
        var error = Assert.Throws<StateDictException>(() => OptimizerStateDict.FromPython(root));

        Assert.StartsWith("Expected key 'state' holding a dict, found no such key; the root has keys ['aaaa", error.Message);
        Assert.True(error.Message.Length < 1200, $"The message has {error.Message.Length} characters.");
    }

    [Fact]
    public void Zip64EntrySizeOf2Pow63Rejected()
    {
        byte[] file = Zip64File();
        int extra = Zip64ExtraOf(file, "archive/data/0");
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(extra + 4), 1UL << 63);

        var error = ReadFails(file);

        Assert.StartsWith("Entry 'archive/data/0' needs a zip64 extra field with its sizes and offset, but that field is missing or invalid.", error.Message);
    }

    [Fact]
    public void Zip64EntrySizeBeyondFileRejected()
    {
        byte[] file = Zip64File();
        int extra = Zip64ExtraOf(file, "archive/data/0");
        BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(extra + 4), long.MaxValue);
        BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(extra + 12), long.MaxValue);

        var (error, allocated, _) = Measure(() => ReadFails(file));

        Assert.StartsWith("The data of entry 'archive/data/0' (9223372036854775807 bytes) runs into the next entry", error.Message);
        Assert.True(allocated < 1 << 20, $"Rejecting allocated {allocated} bytes.");
    }

    [Fact]
    public void Zip64DirectorySizeBeyondFileRejected()
    {
        byte[] file = Zip64File();
        int record = LastIndexOf(file, ZipStoreWriter.Zip64EndOfCentralDirectorySignature);
        BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(record + 40), long.MaxValue);

        var error = ReadFails(file);

        Assert.Contains("9223372036854775807 bytes) lies outside the file", error.Message);
    }

    [Fact]
    public void Zip64RecordOffsetBeyondFileRejected()
    {
        byte[] file = Zip64File();
        int locator = LastIndexOf(file, ZipStoreWriter.Zip64LocatorSignature);
        BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(locator + 8), long.MaxValue);

        var error = ReadFails(file);

        Assert.StartsWith("The zip64 end of central directory offset 9223372036854775807 is outside the file.", error.Message);
    }

    [Theory]
    [InlineData("archive/data/0", "The data of entry 'archive/data/0' (4294967294 bytes) runs into the next entry")]
    [InlineData("archive/version", "Record 'archive/version' has 4294967294 bytes, but it should contain a short text such as '3'.")]
    [InlineData("archive/data.pkl", "Entry 'archive/data.pkl' has 4294967294 bytes, more than the MaxPickleBytes limit of 16777216.")]
    public void ZipBombSizeClaimRejected(string entryName, string expected)
    {
        // Stored entries cannot expand, so a 4 GiB size in a small file is rejected before anything is allocated.
        byte[] file = SmallFile();
        int header = CentralHeaderOf(file, entryName);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 20), uint.MaxValue - 1);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 24), uint.MaxValue - 1);

        var (error, allocated, _) = Measure(() => ReadFails(file));

        Assert.StartsWith(expected, error.Message);
        Assert.True(allocated < 1 << 20, $"Rejecting allocated {allocated} bytes.");
    }

    [Fact]
    public void LastEntrySizeBeyondFileRejected()
    {
        byte[] file = Zip(
            ("archive/data.pkl", RootWithTensor(p => p.Tensor("0", 2, [2]))),
            ("archive/version", "3\n"u8.ToArray()),
            ("archive/data/0", Floats(1f, 2f)));
        int header = CentralHeaderOf(file, "archive/data/0");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 20), uint.MaxValue - 1);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 24), uint.MaxValue - 1);

        var (error, allocated, _) = Measure(() => ReadFails(file));

        Assert.StartsWith("The data of entry 'archive/data/0' (4294967294 bytes) runs past the file's entry area.", error.Message);
        Assert.True(allocated < 1 << 20, $"Rejecting allocated {allocated} bytes.");
    }

    [Fact]
    public void CompressionRatioClaimRejected()
    {
        byte[] file = SmallFile();
        int header = CentralHeaderOf(file, "archive/data/0");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 24), uint.MaxValue - 1);

        var error = ReadFails(file);

        Assert.StartsWith("Entry 'archive/data/0' is stored uncompressed but declares 8 stored bytes and 4294967294 data bytes.", error.Message);
    }

    [Fact]
    public void EntryCountBeyondDirectoryRejected()
    {
        byte[] file = SmallFile();
        int end = LastIndexOf(file, ZipStoreWriter.EndOfCentralDirectorySignature);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(end + 8), 60_000);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(end + 10), 60_000);

        var error = ReadFails(file);

        Assert.StartsWith("The zip archive declares 60000 entries, which do not fit in its central directory", error.Message);
    }

    [Fact]
    public void OverlappingEntriesRejected()
    {
        // Entry data/0 claims every byte up to the central directory, so it contains the local header and data of
        // data/1 as well, with a matching CRC. Many such nested entries would make a small file read as a huge one.
        byte[] pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Str("a").Tensor("0", 2, [2]).Op(PickleOpcodes.SetItem)
            .Str("b").Tensor("1", 2, [2]).Op(PickleOpcodes.SetItem).Stop();
        byte[] file = Zip(
            ("archive/data.pkl", pickle),
            ("archive/data/0", Floats(1f, 2f)),
            ("archive/data/1", Floats(3f, 4f)),
            ("archive/version", "3\n"u8.ToArray()));
        var zip = ZipStoreReader.Open(new MemoryStream(file));
        var first = zip.Entries.Single(entry => entry.Name == "archive/data/0");
        var version = zip.Entries.Single(entry => entry.Name == "archive/version");
        long start = zip.GetDataOffset(first);
        int claimed = (int)(version.LocalHeaderOffset - start);
        int header = CentralHeaderOf(file, "archive/data/0");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 16), System.IO.Hashing.Crc32.HashToUInt32(file.AsSpan((int)start, claimed)));
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 20), (uint)claimed);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 24), (uint)claimed);

        var error = ReadFails(file);

        Assert.StartsWith($"The data of entry 'archive/data/0' ({claimed} bytes) runs into the next entry, whose local header is at offset", error.Message);
        Assert.Equal("archive/data/0", error.EntryName);
    }

    [Fact]
    public void SharedLocalHeaderRejected()
    {
        byte[] file = SmallFile();
        var zip = ZipStoreReader.Open(new MemoryStream(file));
        long pickleHeader = zip.Entries.Single(entry => entry.Name == "archive/data.pkl").LocalHeaderOffset;
        int header = CentralHeaderOf(file, "archive/data/0");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(header + 42), (uint)pickleHeader);

        var error = ReadFails(file);

        Assert.StartsWith($"Entries 'archive/data.pkl' and 'archive/data/0' share the local header at offset {pickleHeader}.", error.Message);
    }

    [Fact]
    public void DuplicateEntryNameRejected()
    {
        byte[] pickle = RootWithTensor(p => p.Tensor("0", 2, [2]));
        byte[] file = Zip(
            ("archive/data.pkl", pickle),
            ("archive/data/0", Floats(1f, 2f)),
            ("archive/data/0", Floats(3f, 4f)),
            ("archive/version", "3\n"u8.ToArray()));

        var error = ReadFails(file);

        Assert.StartsWith("Entry 'archive/data/0' occurs twice in the zip archive.", error.Message);
        Assert.Equal("archive/data/0", error.EntryName);
    }

    /// <summary>
    /// Returns <c>{'views': [...]}</c> with <paramref name="views"/> full-size views of storage <c>0</c>, each from
    /// its own argument tuple built of memoized parts, so that each call creates a new tensor for 17 bytes of pickle.
    /// </summary>
    private static byte[] ViewsOfOneStorage(int views, int storageElements)
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("views").Op(PickleOpcodes.EmptyList)
            .Global("torch._utils", "_rebuild_tensor_v2").Op(PickleOpcodes.BinPut, 0).Op(PickleOpcodes.Pop)
            .Op(PickleOpcodes.Mark).Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(storageElements).Op(PickleOpcodes.Tuple)
            .Op(PickleOpcodes.BinPersId).Op(PickleOpcodes.BinPut, 1).Op(PickleOpcodes.Pop)
            .Int(0).Op(PickleOpcodes.BinPut, 2).Op(PickleOpcodes.Pop)
            .IntTuple(storageElements).Op(PickleOpcodes.BinPut, 3).Op(PickleOpcodes.Pop)
            .IntTuple(1).Op(PickleOpcodes.BinPut, 4).Op(PickleOpcodes.Pop)
            .Op(PickleOpcodes.NewFalse).Op(PickleOpcodes.BinPut, 5).Op(PickleOpcodes.Pop)
            .Global("collections", "OrderedDict").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce).Op(PickleOpcodes.BinPut, 6).Op(PickleOpcodes.Pop)
            .Op(PickleOpcodes.Mark);
        for (int i = 0; i < views; i++)
        {
            pickle.Op(PickleOpcodes.BinGet, 0).Op(PickleOpcodes.Mark);
            for (byte memo = 1; memo <= 6; memo++)
            {
                pickle.Op(PickleOpcodes.BinGet, memo);
            }

            pickle.Op(PickleOpcodes.Tuple).Op(PickleOpcodes.Reduce);
        }

        return pickle.Op(PickleOpcodes.Appends).Op(PickleOpcodes.SetItem).Stop();
    }

    private static byte[] SmallFile() => PtFile(RootWithTensor(p => p.Tensor("0", 2, [2])), ("0", Floats(1f, 2f)));

    private static byte[] Zip64File()
    {
        using var stream = new MemoryStream();
        var state = new OrderedDictionary<object, object?> { ["t"] = Tensor.FromFloats([1f, 2f], 2) };
        PtWriter.Write(stream, state, new PtWriterOptions { ForceZip64 = true });
        return stream.ToArray();
    }

    /// <summary>Returns the offset of the central directory header of <paramref name="entryName"/>.</summary>
    private static int CentralHeaderOf(byte[] file, string entryName)
    {
        byte[] name = Encoding.UTF8.GetBytes(entryName);
        for (int at = 0; at + 46 + name.Length <= file.Length; at++)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at)) == ZipStoreWriter.CentralHeaderSignature
                && BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at + 28)) == name.Length
                && file.AsSpan(at + 46, name.Length).SequenceEqual(name))
            {
                return at;
            }
        }

        throw new InvalidOperationException($"The test file has no central directory header for '{entryName}'.");
    }

    /// <summary>Returns the offset of the zip64 extra field in the central directory header of <paramref name="entryName"/>.</summary>
    private static int Zip64ExtraOf(byte[] file, string entryName)
    {
        int header = CentralHeaderOf(file, entryName);
        int extra = header + 46 + BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(header + 28));
        Assert.Equal(ZipStoreWriter.Zip64ExtraFieldId, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(extra)));
        return extra;
    }

    private static int LastIndexOf(byte[] file, uint signature)
    {
        for (int at = file.Length - 4; at >= 0; at--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at)) == signature)
            {
                return at;
            }
        }

        throw new InvalidOperationException($"The test file has no record with signature 0x{signature:x8}.");
    }

    /// <summary>Runs <paramref name="action"/> and returns its result with the bytes it allocated and the time it took.</summary>
    private static (T Result, long AllocatedBytes, TimeSpan Elapsed) Measure<T>(Func<T> action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        T result = action();
        return (result, GC.GetAllocatedBytesForCurrentThread() - before, clock.Elapsed);
    }

    private static PtFormatException ReadFails(byte[] file) =>
        Assert.Throws<PtFormatException>(() => PtReader.Read(new MemoryStream(file)));
}
