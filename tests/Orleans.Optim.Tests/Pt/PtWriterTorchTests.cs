using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.Json;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;
using Xunit;

namespace Orleans.Optim.Tests.Pt;

/// <summary>Writes .pt files and checks them with real torch 1.13 and with the reader.</summary>
public sealed class PtWriterTorchTests : IDisposable
{
    private readonly string _folder = PtFixtures.NewTemporaryFolder();

    public static TheoryData<string> StateFixtures => new(PtFixtures.StateFixtures);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [MemberData(nameof(StateFixtures))]
    public void RewrittenFixtureLoadsInTorch(string fixture)
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf(fixture + ".pt"));
        string path = Path.Combine(_folder, fixture + ".pt");

        PtWriter.WriteFile(path, state);

        var described = PtFixtures.RunOracle("describe", path);
        Assert.Equal(JsonValueKind.Null, described.GetProperty("bad_entry").ValueKind);
        TorchValueAssert.Matches(PtFixtures.Expected(fixture).GetProperty("value"), state);
        TorchValueAssert.Matches(described.GetProperty("value"), state);
        TorchValueAssert.AllTensorsPlain(described.GetProperty("value"));
    }

    [Theory]
    [MemberData(nameof(StateFixtures))]
    public void RewrittenFixtureReadsBackEqual(string fixture)
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf(fixture + ".pt"));
        using var stream = new MemoryStream();

        PtWriter.Write(stream, state);
        stream.Position = 0;
        var reread = PtReader.Read(stream);

        Assert.True(PythonValues.StrictEquals(state, reread), "The state read back differs from the state written.");
        TorchValueAssert.Matches(PtFixtures.Expected(fixture).GetProperty("value"), reread);
    }

    [Fact]
    public void RewrittenAdamStateStepsLikeOriginal()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("adam_state.pt"));
        string path = Path.Combine(_folder, "adam.pt");
        PtWriter.WriteFile(path, state);

        var result = PtFixtures.RunOracle("adam-step", PtFixtures.PathOf("adam_state.pt"), path);

        Assert.Equal(4, result.GetProperty("parameters").GetInt32());
        Assert.True(result.GetProperty("same").GetBoolean(), "torch's Adam stepped differently from our file than from its own.");
    }

    [Fact]
    public void NativeAdamStateLoadsIntoTorchAdam()
    {
        // Parameter shapes of pt_oracle.adam_model(): Linear(4, 3), ReLU, Linear(3, 2).
        long[][] shapes = [[3, 4], [3], [2, 3], [2]];
        var perParameter = new OrderedDictionary<object, object?>();
        for (int i = 0; i < shapes.Length; i++)
        {
            int count = (int)Tensor.CountElements(shapes[i]);
            perParameter[(long)i] = new OrderedDictionary<object, object?>
            {
                ["step"] = Tensor.Scalar(5f),
                ["exp_avg"] = Tensor.FromFloats(Enumerable.Range(0, count).Select(k => 0.01f * (k - i)).ToArray(), shapes[i]),
                ["exp_avg_sq"] = Tensor.FromFloats(Enumerable.Range(0, count).Select(k => 1e-4f * (k + 1)).ToArray(), shapes[i]),
            };
        }

        var group = new OrderedDictionary<object, object?>
        {
            ["lr"] = 1e-3,
            ["betas"] = new object?[] { 0.9, 0.999 },
            ["eps"] = 1e-8,
            ["weight_decay"] = 0L,
            ["amsgrad"] = false,
            ["maximize"] = false,
            ["foreach"] = null,
            ["capturable"] = false,
            ["differentiable"] = false,
            ["fused"] = false,
            ["params"] = new List<object?> { 0L, 1L, 2L, 3L },
        };
        var state = new OrderedDictionary<object, object?> { ["state"] = perParameter, ["param_groups"] = new List<object?> { group } };
        string path = Path.Combine(_folder, "native_adam.pt");
        PtWriter.WriteFile(path, state);

        var stepped = PtFixtures.RunOracle("adam-load", path).GetProperty("value");

        // The described state dict is {'state': {id: {'step': ..., ...}}, 'param_groups': [...]}. 6.0f is 0x40c00000.
        var parameters = stepped.GetProperty("items")[0][1].GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(4, parameters.Count);
        foreach (var parameter in parameters)
        {
            var step = parameter[1].GetProperty("items").EnumerateArray().Single(pair => pair[0].GetProperty("value").GetString() == "step")[1];
            Assert.Equal("0000c040", step.GetProperty("data").GetString());
        }

        var groups = stepped.GetProperty("items")[1][1].GetProperty("items");
        Assert.Equal(1, groups.GetArrayLength());
        var betas = groups[0].GetProperty("items")[1][1];
        Assert.Equal("tuple", betas.GetProperty("type").GetString());
    }

    [Fact]
    public void StreamedTensorLoadsInTorch()
    {
        float[] values = Enumerable.Range(0, 1000).Select(i => i * 0.25f).ToArray();
        int calls = 0;
        var streamed = new StreamedTensor(DType.Float32, [10, 100], stream =>
        {
            calls++;
            byte[] bytes = PtArchiveBuilder.Floats(values);
            for (int offset = 0; offset < bytes.Length; offset += 300)
            {
                stream.Write(bytes, offset, Math.Min(300, bytes.Length - offset));
            }
        });
        var state = new OrderedDictionary<object, object?>
        {
            ["state"] = new OrderedDictionary<object, object?> { [0L] = new OrderedDictionary<object, object?> { ["a"] = streamed, ["b"] = streamed } },
            ["param_groups"] = new List<object?>(),
        };
        string path = Path.Combine(_folder, "streamed.pt");

        PtWriter.WriteFile(path, state);

        Assert.Equal(1, calls);
        var expected = new Tensor(DType.Float32, [10, 100], PtArchiveBuilder.Floats(values));
        var reread = PtReader.ReadFile(path);
        var entry = (OrderedDictionary<object, object?>)((OrderedDictionary<object, object?>)reread["state"]!)[0L]!;
        Assert.True(expected.BitwiseEquals((Tensor)entry["a"]!), "The streamed tensor read back differs.");
        Assert.Same(entry["a"], entry["b"]);
        var described = PtFixtures.RunOracle("describe", path);
        TorchValueAssert.Matches(described.GetProperty("value"), reread);
        TorchValueAssert.AllTensorsPlain(described.GetProperty("value"));
    }

    [Fact]
    public void Zip64ArchiveLoadsInTorch()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("views_state.pt"));
        string path = Path.Combine(_folder, "zip64.pt");
        using (var stream = File.Create(path))
        {
            PtWriter.Write(stream, state, new PtWriterOptions { ForceZip64 = true });
        }

        var described = PtFixtures.RunOracle("describe", path);

        Assert.Equal(JsonValueKind.Null, described.GetProperty("bad_entry").ValueKind);
        TorchValueAssert.Matches(described.GetProperty("value"), state);
        Assert.True(PythonValues.StrictEquals(state, PtReader.ReadFile(path)), "The zip64 archive reads back different.");
        byte[] bytes = File.ReadAllBytes(path);
        int endRecord = bytes.Length - 22;
        Assert.Equal(0x06054b50u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(endRecord)));
        Assert.Equal(0x07064b50u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(endRecord - 20)));
        Assert.Equal(0xFFFFFFFFu, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(endRecord + 16)));
    }

    [Fact]
    public void WriterLaysOutEntriesLikeTorch()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("sgd_state.pt"));
        using var stream = new MemoryStream();

        PtWriter.Write(stream, state, new PtWriterOptions { ArchiveName = "sgd" });
        byte[] bytes = stream.ToArray();

        var headers = ReadLocalHeaders(bytes);
        Assert.Equal(["sgd/data.pkl", "sgd/data/0", "sgd/data/1", "sgd/data/2", "sgd/data/3", "sgd/version"], headers.Select(h => h.Name));
        Assert.All(headers, header => Assert.Equal(0, header.Method));
        Assert.All(headers, header => Assert.Equal(0, header.DataOffset % 64));
        Assert.All(headers, header => Assert.True(header.HasPaddingField, $"Entry {header.Name} lacks the FB padding field."));

        using var archive = new ZipArchive(new MemoryStream(bytes), ZipArchiveMode.Read);
        Assert.Equal(headers.Select(h => h.Name), archive.Entries.Select(e => e.FullName));
        using var version = new StreamReader(archive.GetEntry("sgd/version")!.Open());
        Assert.Equal("3\n", version.ReadToEnd());
    }

    [Fact]
    public void WriterOutputIsDeterministic()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("model_state.pt"));
        using var first = new MemoryStream();
        using var second = new MemoryStream();

        PtWriter.Write(first, state);
        PtWriter.Write(second, state);

        Assert.Equal(first.ToArray(), second.ToArray());
    }

    private static List<(string Name, int Method, long DataOffset, bool HasPaddingField)> ReadLocalHeaders(byte[] bytes)
    {
        var headers = new List<(string, int, long, bool)>();
        int at = 0;
        while (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at)) == 0x04034b50)
        {
            int method = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(at + 8));
            int size = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at + 22));
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(at + 26));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(at + 28));
            string name = System.Text.Encoding.UTF8.GetString(bytes, at + 30, nameLength);
            var extra = bytes.AsSpan(at + 30 + nameLength, extraLength);
            bool padding = false;
            while (extra.Length >= 4)
            {
                padding |= BinaryPrimitives.ReadUInt16LittleEndian(extra) == 0x4246;
                extra = extra[(4 + BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]))..];
            }

            long dataOffset = at + 30 + nameLength + extraLength;
            headers.Add((name, method, dataOffset, padding));
            at = (int)dataOffset + size;
        }

        return headers;
    }
}
