using Orleans.Optim.Formats.Pt;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Pt.Fuzz;

/// <summary>
/// The valid files that the fuzzer mutates: torch 1.13 optimizer, model and scheduler state dicts committed in
/// the repository, and files that <see cref="PtWriter"/> writes from some of them.
/// </summary>
internal static class PtFuzzSeeds
{
    private static readonly Lazy<IReadOnlyList<FuzzSeed>> Seeds = new(Load);

    /// <summary>
    /// All seeds, in a fixed order so that a fuzz seed always picks the same file. The last one has a storage larger
    /// than 1 MiB, and the fuzzer picks it less often.
    /// </summary>
    public static IReadOnlyList<FuzzSeed> All => Seeds.Value;

    private static List<FuzzSeed> Load()
    {
        var seeds = new List<FuzzSeed>();
        foreach (string fixture in new[] { "adam_state", "sgd_state", "model_state", "parameters_state", "views_state", "expanded_state", "legacy_format" })
        {
            seeds.Add(FromFile("torch:" + fixture, PtFixtures.PathOf(fixture + ".pt")));
        }

        foreach (string fixture in new[] { "rmsprop_default_two_groups", "resume_asgd_after_step3", "adagrad_foreach", "sgd_nesterov" })
        {
            seeds.Add(FromFile("torch:" + fixture, Path.Combine(RepositoryPaths.TorchFixtures, fixture + ".pt")));
        }

        foreach (string fixture in new[] { "onecycle_adam_middle", "multistep_lr_int_lr_end", "sequential_warmup_cosine_middle" })
        {
            seeds.Add(FromFile("torch:" + fixture, Path.Combine(RepositoryPaths.Root, "tests", "fixtures", "schedulers", fixture + ".pt")));
        }

        var adam = OptimizerStateDict.FromPython(PtReader.ReadFile(PtFixtures.PathOf("adam_state.pt")));
        seeds.Add(FromBytes("writer:adam_state", Write(adam.ToPython())));
        seeds.Add(FromBytes("writer:model_state", Write(PtReader.ReadFile(PtFixtures.PathOf("model_state.pt")))));
        string oneCycle = Path.Combine(RepositoryPaths.Root, "tests", "fixtures", "schedulers", "onecycle_adam_end.pt");
        seeds.Add(FromBytes("writer:onecycle_adam_end", Write(PtReader.ReadFile(oneCycle))));
        seeds.Add(FromBytes("writer:views_state_zip64", Write(PtReader.ReadFile(PtFixtures.PathOf("views_state.pt")), zip64: true)));
        seeds.Add(FromBytes("writer:large_tensor", Write(LargeTensorState())));
        seeds.Add(FromBytes("builder:views_across_chunks", ViewsAcrossChunks()));
        return seeds;
    }

    /// <summary>
    /// Returns an SGD state dict with one 64 KiB momentum buffer, so that a mutation that copies a storage many times
    /// allocates far more than the file size.
    /// </summary>
    private static OrderedDictionary<object, object?> LargeTensorState()
    {
        float[] values = Enumerable.Range(0, 16_384).Select(i => i * 0.25f).ToArray();
        var state = new OrderedDictionary<long, OrderedDictionary<string, object?>>
        {
            [0] = new() { ["momentum_buffer"] = Tensor.FromFloats(values, [128, 128]) },
        };
        var group = new OrderedDictionary<string, object?> { ["lr"] = 0.1, ["momentum"] = 0.9, ["params"] = new List<object?> { 0L } };
        return new OptimizerStateDict(state, [group]).ToPython();
    }

    /// <summary>
    /// Returns a file with small views of a storage just larger than the reader's 1 MiB copy chunk: contiguous
    /// views before, across and after the chunk border, and a strided view that spans both chunks.
    /// </summary>
    private static byte[] ViewsAcrossChunks()
    {
        const int Elements = 262_144 + 16;
        float[] values = Enumerable.Range(0, Elements).Select(i => i * 0.5f).ToArray();
        byte[] pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Str("before").Tensor("0", Elements, [4], [1], 100).Op(PickleOpcodes.SetItem)
            .Str("across").Tensor("0", Elements, [10], [1], 262_140).Op(PickleOpcodes.SetItem)
            .Str("after").Tensor("0", Elements, [6], [1], 262_150).Op(PickleOpcodes.SetItem)
            .Str("strided").Tensor("0", Elements, [65], [4096], 7).Op(PickleOpcodes.SetItem)
            .Stop();
        return PtArchiveBuilder.PtFile(pickle, ("0", PtArchiveBuilder.Floats(values)));
    }

    private static FuzzSeed FromFile(string name, string path) => FromBytes(name, File.ReadAllBytes(path));

    private static FuzzSeed FromBytes(string name, byte[] file)
    {
        List<(string, byte[])>? entries = null;
        try
        {
            var zip = ZipStoreReader.Open(new MemoryStream(file));
            entries = zip.Entries.Select(entry => (entry.Name, zip.ReadAll(entry))).ToList();
        }
        catch (PtFormatException)
        {
            // Not a zip archive, such as the legacy format: only whole-file mutations apply.
        }

        return new FuzzSeed(name, file, entries);
    }

    private static byte[] Write(OrderedDictionary<object, object?> root, bool zip64 = false)
    {
        using var stream = new MemoryStream();
        PtWriter.Write(stream, root, new PtWriterOptions { ForceZip64 = zip64 });
        return stream.ToArray();
    }
}
