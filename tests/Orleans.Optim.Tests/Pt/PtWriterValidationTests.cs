using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;
using Xunit;

namespace Orleans.Optim.Tests.Pt;

/// <summary>Checks that the writer rejects trees and streams it cannot write, before writing anything.</summary>
public sealed class PtWriterValidationTests : IDisposable
{
    private readonly string _folder = PtFixtures.NewTemporaryFolder();

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void SingleFloatValueRejected()
    {
        var state = Root(new OrderedDictionary<object, object?> { ["lr"] = 0.1f });

        var error = WriteFails(state);

        Assert.StartsWith("The value at root['state'][0]['lr'] has type System.Single, which has no Python equivalent", error.Message);
    }

    [Fact]
    public void CustomObjectRejected()
    {
        var state = Root(new OrderedDictionary<object, object?> { ["when"] = DateTime.UnixEpoch });

        var error = WriteFails(state);

        Assert.StartsWith("The value at root['state'][0]['when'] has type System.DateTime", error.Message);
    }

    [Fact]
    public void LongArrayRejected()
    {
        var state = Root(new OrderedDictionary<object, object?> { ["shape"] = new long[] { 3, 5 } });

        var error = WriteFails(state);

        Assert.Contains("has type System.Int64[]", error.Message);
    }

    [Fact]
    public void UnpairedSurrogateRejected()
    {
        var state = Root(new OrderedDictionary<object, object?> { ["name"] = "bad\uD800" });

        var error = WriteFails(state);

        Assert.StartsWith("The string at root['state'][0]['name'] contains an unpaired UTF-16 surrogate", error.Message);
    }

    [Fact]
    public void CyclicListRejected()
    {
        var loop = new List<object?>();
        loop.Add(loop);

        var error = WriteFails(Root(new OrderedDictionary<object, object?> { ["loop"] = loop }));

        Assert.StartsWith("The container at root['state'][0]['loop'][0] contains itself", error.Message);
    }

    [Fact]
    public void CollidingIntKeysRejected()
    {
        var state = new OrderedDictionary<object, object?> { [1] = "int", [1L] = "long" };

        var error = WriteFails(state);

        Assert.StartsWith("The dict at root has two keys equal to 1 once int keys become Python ints", error.Message);
    }

    [Fact]
    public void TensorKeyRejected()
    {
        var state = new OrderedDictionary<object, object?> { [Tensor.Scalar(1f)] = 1L };

        var error = WriteFails(state);

        Assert.Contains("has type Orleans.Optim.Tensors.Tensor, but keys must be str, int, float, bool or tuple", error.Message);
    }

    [Fact]
    public void DeepNestingRejected()
    {
        object? value = 1L;
        for (int i = 0; i < 120; i++)
        {
            value = new List<object?> { value };
        }

        var error = WriteFails(new OrderedDictionary<object, object?> { ["deep"] = value });

        Assert.Contains("is nested more than 100 containers deep", error.Message);
    }

    [Fact]
    public void MaxDepthTreeRoundTrips()
    {
        // The root dict and 99 nested lists make 100 containers, the limit of both the writer and the reader.
        object? value = Tensor.Scalar(1f);
        for (int i = 0; i < 99; i++)
        {
            value = new List<object?> { value };
        }

        var state = new OrderedDictionary<object, object?> { ["deep"] = value };
        using var stream = new MemoryStream();
        PtWriter.Write(stream, state);
        stream.Position = 0;
        var reread = PtReader.Read(stream);

        Assert.True(PythonValues.StrictEquals(state, reread), "The deepest allowed tree reads back different.");
    }

    [Fact]
    public void SharedSubtreeWrittenOnce()
    {
        // 40 levels of a list that contains the level below twice would be 2**40 nodes if shared subtrees were expanded.
        object? value = Tensor.Scalar(2f);
        for (int i = 0; i < 40; i++)
        {
            value = new List<object?> { value, value };
        }

        using var stream = new MemoryStream();
        PtWriter.Write(stream, new OrderedDictionary<object, object?> { ["shared"] = value });
        stream.Position = 0;

        // The reader rejects such a tree by default, because only a crafted state dict shares that much.
        var error = Assert.Throws<PtFormatException>(() => PtReader.Read(stream));
        stream.Position = 0;
        var reread = PtReader.Read(stream, new PtReaderOptions { MaxExpandedValues = long.MaxValue });

        Assert.Contains("the MaxExpandedValues limit", error.Message);
        var top = Assert.IsType<List<object?>>(reread["shared"]);
        Assert.Same(top[0], top[1]);
        Assert.True(stream.Length < 100_000, $"The file has {stream.Length} bytes.");
    }

    [Fact]
    public void StreamedTensorNeedsSeekableStream()
    {
        var streamed = new StreamedTensor(DType.Float32, [2], stream => stream.Write(new byte[8]));
        using var output = new WriteOnlyStream();

        var error = Assert.Throws<ArgumentException>(() => PtWriter.Write(output, Root(new OrderedDictionary<object, object?> { ["t"] = streamed })));

        Assert.Contains("needs a seekable output stream", error.Message);
        Assert.Equal(0, output.BytesWritten);
    }

    [Fact]
    public void ShortStreamedTensorRejected()
    {
        var streamed = new StreamedTensor(DType.Float32, [3], stream => stream.Write(new byte[8]));

        var error = Assert.Throws<InvalidOperationException>(
            () => PtWriter.Write(new MemoryStream(), Root(new OrderedDictionary<object, object?> { ["t"] = streamed })));

        Assert.StartsWith("The data callback of StreamedTensor[float32, [3]] wrote 8 bytes for entry 'archive/data/0', but 12 are needed", error.Message);
    }

    [Fact]
    public void LongStreamedTensorRejected()
    {
        var streamed = new StreamedTensor(DType.Int64, [1], stream => stream.Write(new byte[9]));

        var error = Assert.Throws<InvalidOperationException>(
            () => PtWriter.Write(new MemoryStream(), Root(new OrderedDictionary<object, object?> { ["t"] = streamed })));

        Assert.StartsWith("The data callback of StreamedTensor[int64, [1]] wrote more than the 8 bytes of entry 'archive/data/0'", error.Message);
    }

    [Fact]
    public void FailedWriteKeepsExistingFile()
    {
        string path = Path.Combine(_folder, "state.pt");
        File.WriteAllText(path, "previous content");
        var streamed = new StreamedTensor(DType.Float32, [3], stream => throw new IOException("disk full"));

        Assert.Throws<IOException>(() => PtWriter.WriteFile(path, Root(new OrderedDictionary<object, object?> { ["t"] = streamed })));

        Assert.Equal("previous content", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(_folder));
    }

    [Fact]
    public void InvalidArchiveNameRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => new PtWriterOptions { ArchiveName = "a/b" });

        Assert.StartsWith("Invalid archive name 'a/b'", error.Message);
    }

    [Fact]
    public void IntValuesBecomePythonInts()
    {
        using var stream = new MemoryStream();

        PtWriter.Write(stream, new OrderedDictionary<object, object?> { [7] = 42, ["big"] = long.MinValue });
        stream.Position = 0;
        var reread = PtReader.Read(stream);

        Assert.Equal([7L, "big"], reread.Keys);
        Assert.Equal(42L, reread[7L]);
        Assert.Equal(long.MinValue, reread["big"]);
    }

    private static OrderedDictionary<object, object?> Root(OrderedDictionary<object, object?> parameterState) => new()
    {
        ["state"] = new OrderedDictionary<object, object?> { [0L] = parameterState },
        ["param_groups"] = new List<object?>(),
    };

    private static ArgumentException WriteFails(OrderedDictionary<object, object?> state)
    {
        using var output = new MemoryStream();
        var error = Assert.Throws<ArgumentException>(() => PtWriter.Write(output, state));
        Assert.Equal(0, output.Length);
        return error;
    }

    private sealed class WriteOnlyStream : Stream
    {
        public long BytesWritten { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => BytesWritten += count;
    }
}
