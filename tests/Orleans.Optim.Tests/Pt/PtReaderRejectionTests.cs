using System.Diagnostics;
using System.IO.Compression;
using Orleans.Optim.Formats.Pt;
using Xunit;
using static Orleans.Optim.Tests.Pt.PtArchiveBuilder;

namespace Orleans.Optim.Tests.Pt;

/// <summary>Feeds malicious, malformed and oversized files to the reader and checks each specific error.</summary>
public sealed class PtReaderRejectionTests
{
    private const string PickleEntry = "archive/data.pkl";

    public static TheoryData<string, string> ForbiddenGlobals => new()
    {
        { "os", "system" },
        { "builtins", "eval" },
        { "subprocess", "Popen" },
        { "posix", "system" },
        { "__main__", "StealCredentials" },
        { "torch", "load" },
        { "torch._utils", "_rebuild_qtensor" },
    };

    [Theory]
    [MemberData(nameof(ForbiddenGlobals))]
    public void ForbiddenGlobalRejectedAtGlobal(string module, string name)
    {
        // {'x': module.name('echo pwned')}, the shape of a typical pickle exploit.
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x");
        int globalAt = pickle.Position;
        byte[] bytes = pickle.Global(module, name).Str("echo pwned").Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.Reduce)
            .Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.StartsWith($"Rejected global '{module}.{name}' in {PickleEntry} at byte {globalAt}:", error.Message);
        Assert.Contains("may be malicious", error.Message);
        Assert.Equal(PickleEntry, error.EntryName);
        Assert.Equal(globalAt, error.Position);
    }

    [Theory]
    [InlineData("torch.nn.modules.linear", "Linear")]
    [InlineData("torch.nn.modules.container", "Sequential")]
    public void PickledTorchModuleGetsStateDictAdvice(string module, string name)
    {
        // torch.save(model) pickles the module object: its class, then its attributes.
        var pickle = PickleBuilder.Start();
        int globalAt = pickle.Position;
        byte[] bytes = pickle.Global(module, name).Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.StartsWith($"Rejected global '{module}.{name}' in {PickleEntry} at byte {globalAt}:", error.Message);
        Assert.EndsWith(
            "The file looks like a whole PyTorch object saved with torch.save(model) or torch.save(optimizer). " +
            "Save model.state_dict() or optimizer.state_dict() instead, which this reader accepts.",
            error.Message);
        Assert.DoesNotContain("may be malicious", error.Message);
    }

    [Fact]
    public void ForbiddenStackGlobalRejected()
    {
        var pickle = PickleBuilder.Start(4).Str("os").Str("system");
        int globalAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.StackGlobal).Str("id").Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.Reduce).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.StartsWith($"Rejected global 'os.system' in {PickleEntry} at byte {globalAt}:", error.Message);
    }

    [Fact]
    public void UnsupportedStorageClassRejected()
    {
        byte[] pickle = RootWithTensor(p => p.Tensor("0", 2, [2], storageClass: "ComplexFloatStorage"));

        var error = ReadFails(PtFile(pickle, ("0", new byte[16])));

        Assert.Contains("Unsupported storage class 'torch.ComplexFloatStorage'", error.Message);
    }

    [Fact]
    public void StorageClassCalledDirectlyRejected()
    {
        byte[] bytes = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x")
            .Global("torch", "FloatStorage").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.Contains("calls the storage class torch.FloatStorage directly", error.Message);
    }

    [Fact]
    public void GlobalAsValueRejected()
    {
        byte[] bytes = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("cls")
            .Global("collections", "OrderedDict").Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.StartsWith("archive/data.pkl produces the class or function collections.OrderedDict itself as a value", error.Message);
    }

    [Theory]
    [InlineData((byte)'o', "OBJ (0x6f)")]
    [InlineData((byte)0x92, "NEWOBJ_EX (0x92)")]
    [InlineData((byte)'B', "BINBYTES (0x42)")]
    [InlineData((byte)0x82, "EXT1 (0x82)")]
    [InlineData((byte)0x83, "EXT2 (0x83)")]
    [InlineData((byte)0x84, "EXT4 (0x84)")]
    [InlineData((byte)0xff, "unknown opcode 0xff")]
    public void UnsupportedOpcodeRejected(byte opcode, string description)
    {
        byte[] bytes = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Op(opcode, 0, 0, 0, 0).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.StartsWith($"Unsupported pickle opcode {description} in {PickleEntry} at byte 3.", error.Message);
        Assert.Equal(3, error.Position);
    }

    [Fact]
    public void TruncatedFileRejected()
    {
        byte[] file = File.ReadAllBytes(PtFixtures.PathOf("adam_state.pt"));

        var error = ReadFails(file[..(file.Length / 2)]);

        Assert.Contains("The zip archive is truncated", error.Message);
    }

    [Fact]
    public void EveryTruncationRejectedAsFormatError()
    {
        byte[] file = File.ReadAllBytes(PtFixtures.PathOf("views_state.pt"));

        for (int length = 0; length < file.Length; length += 7)
        {
            Assert.Throws<PtFormatException>(() => PtReader.Read(new MemoryStream(file[..length])));
        }
    }

    [Fact]
    public void PickleCrcMismatchRejected()
    {
        byte[] file = PtFile(PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop());
        int pickleStart = DataOffset(file, PickleEntry);
        file[pickleStart + 2] = PickleOpcodes.EmptyList;

        var error = ReadFails(file);

        Assert.StartsWith($"CRC-32 mismatch in entry '{PickleEntry}'", error.Message);
        Assert.Equal(PickleEntry, error.EntryName);
    }

    [Fact]
    public void StorageCrcMismatchRejected()
    {
        byte[] file = PtFile(RootWithTensor(p => p.Tensor("0", 2, [2])), ("0", Floats(1f, 2f)));
        file[DataOffset(file, "archive/data/0") + 7] ^= 0x40;

        var error = ReadFails(file);

        Assert.StartsWith("CRC-32 mismatch in entry 'archive/data/0'", error.Message);
    }

    [Fact]
    public void MissingStorageRecordRejected()
    {
        byte[] pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Str("a").Tensor("0", 1, [1]).Op(PickleOpcodes.SetItem)
            .Str("b").Tensor("1", 1, [1]).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(PtFile(pickle, ("0", Floats(1f))));

        Assert.StartsWith("The zip archive has no entry 'archive/data/1'", error.Message);
        Assert.Equal("archive/data/1", error.EntryName);
    }

    [Fact]
    public void MissingVersionRecordRejected()
    {
        byte[] file = Zip(("archive/data.pkl", PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop()));

        var error = ReadFails(file);

        Assert.StartsWith("The zip archive has no 'archive/version' record", error.Message);
    }

    [Fact]
    public void MissingPickleRecordRejected()
    {
        var error = ReadFails(Zip(("archive/version", "3\n"u8.ToArray())));

        Assert.StartsWith("The zip archive has no 'archive/data.pkl' entry", error.Message);
    }

    [Fact]
    public void UnsupportedVersionRejected()
    {
        var error = ReadFails(Zip(("archive/data.pkl", PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop()), ("archive/version", "11\n"u8.ToArray())));

        Assert.Contains("contains '11', but torch 1.13 reads only file format versions 1 to 10", error.Message);
    }

    [Fact]
    public void BigEndianByteOrderRejected()
    {
        byte[] file = Zip(
            ("archive/data.pkl", PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop()),
            ("archive/byteorder", "big"u8.ToArray()),
            ("archive/version", "3\n"u8.ToArray()));

        var error = ReadFails(file);

        Assert.Contains("contains 'big', but only little-endian tensor data is supported", error.Message);
    }

    [Fact]
    public void EntryAtRootRejected()
    {
        var error = ReadFails(Zip(("data.pkl", PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop()), ("version", "3\n"u8.ToArray())));

        Assert.StartsWith("Entry 'data.pkl' is at the root of the zip archive", error.Message);
    }

    [Fact]
    public void MixedFoldersRejected()
    {
        var error = ReadFails(Zip(("a/data.pkl", PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop()), ("b/version", "3\n"u8.ToArray())));

        Assert.StartsWith("Entry 'b/version' is in folder 'b', but the first entry is in folder 'a'", error.Message);
    }

    [Fact]
    public void EmptyZipRejected()
    {
        var error = ReadFails(Zip());

        Assert.StartsWith("The zip archive has no entries", error.Message);
    }

    [Fact]
    public void CompressedEntryRejected()
    {
        using var stream = new MemoryStream();
        using (var archive = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            using (var pickle = archive.CreateEntry("archive/data.pkl", CompressionLevel.Optimal).Open())
            {
                pickle.Write(PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop());
            }

            using var version = archive.CreateEntry("archive/version", CompressionLevel.Optimal).Open();
            version.Write("3\n"u8);
        }

        var error = ReadFails(stream.ToArray());

        Assert.StartsWith("Entry 'archive/version' is compressed (zip method 8)", error.Message);
    }

    [Fact]
    public void LegacyFormatRejectedWithAdvice()
    {
        var error = ReadFails(File.ReadAllBytes(PtFixtures.PathOf("legacy_format.pt")));

        Assert.StartsWith("The file uses torch's legacy .pt format", error.Message);
        Assert.Contains("torch.save(torch.load(path), path)", error.Message);
    }

    [Fact]
    public void BarePickleRejected()
    {
        var error = ReadFails(PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop());

        Assert.StartsWith("The file is a bare pickle stream", error.Message);
    }

    [Fact]
    public void RandomBytesRejected()
    {
        var error = ReadFails("GIF89a not a zip"u8.ToArray());

        Assert.StartsWith("The file is not a .pt zip archive: it is 16 bytes long and starts with 0x47494638", error.Message);
    }

    [Fact]
    public void EmptyFileRejected()
    {
        var error = ReadFails([]);

        Assert.StartsWith("The file is empty", error.Message);
    }

    [Fact]
    public void ShortStorageRecordRejected()
    {
        byte[] pickle = RootWithTensor(p => p.Tensor("0", 10, [10]));

        var error = ReadFails(PtFile(pickle, ("0", Floats(1f, 2f))));

        Assert.Contains("Storage '0' declares 10 float32 elements (40 bytes), but entry 'archive/data/0' has only 8 bytes", error.Message);
    }

    [Fact]
    public void ViewOutsideStorageRejected()
    {
        byte[] pickle = RootWithTensor(p => p.Tensor("0", 4, [3], offset: 2));

        var error = ReadFails(PtFile(pickle, ("0", Floats(1f, 2f, 3f, 4f))));

        Assert.Contains("reaches element 4, outside its storage of 4 elements", error.Message);
    }

    [Fact]
    public void ExpandedTorchViewRejected()
    {
        var error = Assert.Throws<PtFormatException>(() => PtReader.ReadFile(PtFixtures.PathOf("expanded_state.pt")));

        Assert.Contains("needs 4000 bytes, more than the 4 bytes of its storage", error.Message);
        Assert.Contains("expanded view (stride 0)", error.Message);
    }

    [Theory]
    [InlineData(1L << 40, 1L << 40, 1L, "declares 1099511627776 float32 elements (4398046511104 bytes), but entry 'archive/data/0' has only 16 bytes")]
    [InlineData(4L, 1L << 40, 1L, "needs 4398046511104 bytes, more than the 16 bytes of its storage")]
    [InlineData(4L, 1L << 62, 4L, "has more elements or a larger extent than 64-bit integers hold")]
    public void HugeDeclaredShapeFailsFast(long storageElements, long rows, long columns, string expected)
    {
        byte[] file = PtFile(RootWithTensor(p => p.Tensor("0", storageElements, [rows, columns])), ("0", Floats(1f, 2f, 3f, 4f)));
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();

        var error = ReadFails(file);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"Rejecting took {clock.Elapsed}.");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocatedBefore < 1 << 20, "Rejecting allocated more than 1 MiB.");
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void TensorBytesLimitRejected()
    {
        byte[] file = PtFile(RootWithTensor(p => p.Tensor("0", 4, [4])), ("0", Floats(1f, 2f, 3f, 4f)));

        var error = ReadFails(file, new PtReaderOptions { MaxTensorBytes = 8 });

        Assert.Contains("has 16 bytes, more than the MaxTensorBytes limit of 8", error.Message);
    }

    [Fact]
    public void TotalBytesLimitRejected()
    {
        byte[] pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Str("a").Tensor("0", 4, [4]).Op(PickleOpcodes.SetItem)
            .Str("b").Tensor("0", 4, [4]).Op(PickleOpcodes.SetItem).Stop();
        byte[] file = PtFile(pickle, ("0", Floats(1f, 2f, 3f, 4f)));

        var error = ReadFails(file, new PtReaderOptions { MaxTotalBytes = 24 });

        Assert.Contains("more than the MaxTotalBytes limit of 24 bytes in all", error.Message);
    }

    [Fact]
    public void PickleBytesLimitRejected()
    {
        byte[] file = PtFile(PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str(new string('k', 100)).Op(PickleOpcodes.None).Op(PickleOpcodes.SetItem).Stop());

        var error = ReadFails(file, new PtReaderOptions { MaxPickleBytes = 64 });

        Assert.Contains("more than the MaxPickleBytes limit of 64", error.Message);
    }

    [Fact]
    public void ContainerItemsLimitRejected()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("list").Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.Mark);
        for (int i = 0; i < 11; i++)
        {
            pickle.Int(i);
        }

        byte[] bytes = pickle.Op(PickleOpcodes.Appends).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(PtFile(bytes), new PtReaderOptions { MaxContainerItems = 10 });

        Assert.Contains("A list in archive/data.pkl at byte", error.Message);
        Assert.Contains("has more than 10 items, the MaxContainerItems limit", error.Message);
    }

    [Fact]
    public void DeepNestingRejected()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("deep");
        for (int i = 0; i < 150; i++)
        {
            pickle.Op(PickleOpcodes.Mark);
        }

        pickle.Op(PickleOpcodes.EmptyList);
        for (int i = 0; i < 150; i++)
        {
            pickle.Op(PickleOpcodes.List);
        }

        var error = ReadFails(PtFile(pickle.Op(PickleOpcodes.SetItem).Stop()));

        Assert.Contains("nests containers more than 100 deep, the MaxNestingDepth limit", error.Message);
    }

    [Fact]
    public void DeepNestingThroughMemoRejected()
    {
        // Each new list is appended to the previous one before it gets its own child, so no MARK nests.
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("deep").Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.BinPut, 0)
            .Op(PickleOpcodes.SetItem);
        for (int i = 0; i < 120; i++)
        {
            pickle.Op(PickleOpcodes.BinGet, (byte)(i % 2)).Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.BinPut, (byte)((i + 1) % 2))
                .Op(PickleOpcodes.Append).Op(PickleOpcodes.Pop);
        }

        var error = ReadFails(PtFile(pickle.Stop()));

        Assert.Contains("nests containers more than 100 deep", error.Message);
    }

    [Fact]
    public void RepeatedLongKeyRejected()
    {
        // A 100,000-character key is stored once and inserted again through the memo for 4 bytes each time.
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str(new string('k', 100_000)).Op(PickleOpcodes.BinPut, 0)
            .Op(PickleOpcodes.None).Op(PickleOpcodes.SetItem);
        for (int i = 0; i < 100; i++)
        {
            pickle.Op(PickleOpcodes.BinGet, 0).Op(PickleOpcodes.None).Op(PickleOpcodes.SetItem);
        }

        var error = ReadFails(PtFile(pickle.Stop()));

        Assert.Contains("inserts dict keys with more characters in all than 4 times the pickle size plus 1,048,576", error.Message);
    }

    [Fact]
    public void SelfContainingListRejected()
    {
        byte[] bytes = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("loop")
            .Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.BinPut, 0).Op(PickleOpcodes.BinGet, 0).Op(PickleOpcodes.Append)
            .Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.Contains("builds a container that contains itself", error.Message);
    }

    [Fact]
    public void ListRootRejected()
    {
        var error = ReadFails(PtFile(PickleBuilder.Start().Op(PickleOpcodes.EmptyList).Stop()));

        Assert.StartsWith("The root object in archive/data.pkl is a list of 0 items, but a dict", error.Message);
    }

    [Fact]
    public void TensorRootRejected()
    {
        byte[] pickle = PickleBuilder.Start().Tensor("0", 1, [1]).Stop();

        var error = ReadFails(PtFile(pickle, ("0", Floats(1f))));

        Assert.StartsWith("The root object in archive/data.pkl is a Tensor[float32, [1]], but a dict", error.Message);
    }

    [Fact]
    public void BuildOnListRejected()
    {
        byte[] bytes = PickleBuilder.Start().Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.EmptyDict).Op(PickleOpcodes.Build).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.Contains("sets the state of a list of 0 items, but a .pt file may only set attributes of an OrderedDict", error.Message);
    }

    [Fact]
    public void BuildWithOtherAttributeRejected()
    {
        byte[] bytes = PickleBuilder.Start().Global("collections", "OrderedDict").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce)
            .Op(PickleOpcodes.EmptyDict).Str("__class__").Op(PickleOpcodes.None).Op(PickleOpcodes.SetItem).Op(PickleOpcodes.Build).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.Contains("sets the attribute '__class__' on an OrderedDict, but only '_metadata' is supported", error.Message);
    }

    [Fact]
    public void IntBeyond64BitsRejected()
    {
        // 2**63 needs a ninth byte for its sign, so LONG1 stores it in 9 bytes.
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("n");
        int longAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.Long1, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(PtFile(bytes));

        Assert.Contains($"An int in archive/data.pkl at byte {longAt} is outside the 64-bit range", error.Message);
    }

    [Fact]
    public void NonSeekableStreamRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => PtReader.Read(new NonSeekableStream(PtFile(PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Stop()))));

        Assert.Contains("needs a readable, seekable stream", error.Message);
    }

    private static PtFormatException ReadFails(byte[] file, PtReaderOptions? options = null) =>
        Assert.Throws<PtFormatException>(() => PtReader.Read(new MemoryStream(file), options));

    private static int DataOffset(byte[] file, string entryName)
    {
        var zip = ZipStoreReader.Open(new MemoryStream(file));
        return (int)zip.GetDataOffset(zip.Entries.Single(entry => entry.Name == entryName));
    }

    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
