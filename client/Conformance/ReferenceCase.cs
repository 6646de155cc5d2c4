using System.Text.Json;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Layout;
using Orleans.Optim.Python;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Cli.Conformance;

/// <summary>A hyperparameter change made in <c>param_groups</c> just before a step.</summary>
public sealed record HyperparameterChange(int BeforeStep, int Group, string Key, object? Value);

/// <summary>One recorded step: gradients per parameter (in param-index order) and the parameters after it.</summary>
public sealed record ReferenceStep(int Number, IReadOnlyList<float[]?> Gradients, IReadOnlyList<float[]> ParamsAfter);

/// <summary>
/// A reference optimizer run recorded with PyTorch: the JSON case format of the project's fixtures
/// (<c>tests/fixtures/torch-1.13/README.md</c> describes every field).
/// </summary>
public sealed class ReferenceCase
{
    private ReferenceCase(string name, string path)
    {
        Name = name;
        Path = path;
    }

    /// <summary>Case name, the file name without <c>.json</c>.</summary>
    public string Name { get; }

    /// <summary>Path of the JSON file.</summary>
    public string Path { get; }

    /// <summary>Torch class name.</summary>
    public string Optimizer { get; private set; } = "";

    /// <summary>Constructor keyword arguments, in order.</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> DefaultOptions { get; private set; } = [];

    /// <summary>Param groups: which parameter indices, and the group's own options in order.</summary>
    public IReadOnlyList<(int[] ParamIndices, IReadOnlyList<KeyValuePair<string, object?>> Options)> Groups { get; private set; } = [];

    /// <summary>Parameter shapes by parameter index.</summary>
    public IReadOnlyList<long[]> ParamShapes { get; private set; } = [];

    /// <summary>Initial parameter values by parameter index.</summary>
    public IReadOnlyList<float[]> ParamsInitial { get; private set; } = [];

    /// <summary>Recorded steps.</summary>
    public IReadOnlyList<ReferenceStep> Steps { get; private set; } = [];

    /// <summary>Hyperparameter changes between steps.</summary>
    public IReadOnlyList<HyperparameterChange> Changes { get; private set; } = [];

    /// <summary><c>optimizer.state_dict()</c> after the last step, with Python types restored.</summary>
    public OptimizerStateDict FinalStateDict { get; private set; } = null!;

    /// <summary>For a <c>resume_&lt;x&gt;</c> case: the sibling <c>.pt</c> saved after step 3, if present.</summary>
    public string? ResumeStateFile { get; private set; }

    /// <summary>Number of steps already taken in <see cref="ResumeStateFile"/>.</summary>
    public int ResumeAfterStep { get; private set; }

    /// <summary>Parameter values (by parameter index) when <see cref="ResumeStateFile"/> was saved.</summary>
    public IReadOnlyList<float[]> ResumeParams { get; private set; } = [];

    /// <summary>The case's own <c>.pt</c> file, <c>torch.save(optimizer.state_dict())</c> after the last step, if present.</summary>
    public string? TorchStateFile { get; private set; }

    /// <summary>Parameter indices in param-ID order: torch numbers the parameters over the groups in order.</summary>
    public IReadOnlyList<int> ParamIndicesById => Groups.SelectMany(g => g.ParamIndices).ToList();

    /// <summary>Builds the optimizer spec of the case for a world size of 1.</summary>
    public OptimizerSpec ToSpec(int maxShardElements = OptimizerSpec.DefaultMaxShardElements) => new()
    {
        Algorithm = Optimizer,
        DefaultOptions = DefaultOptions,
        Groups = Groups.Select(g => new ParamGroupSpec(g.Options, g.ParamIndices.Select(i => new ParameterSpec(null, ParamShapes[i])).ToList())).ToList(),
        MaxShardElements = maxShardElements,
    };

    /// <summary>Reads a case file.</summary>
    /// <exception cref="FormatException">The file is not a case in the expected format; the message names the field.</exception>
    public static ReferenceCase Load(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = document.RootElement;
        var result = new ReferenceCase(System.IO.Path.GetFileNameWithoutExtension(path), path);
        try
        {
            result.Optimizer = root.GetProperty("optimizer").GetString() ?? throw new FormatException("'optimizer' is null.");
            OptimizerAlgorithms.TryGet(result.Optimizer, out var algorithm);
            var tupleKeys = algorithm?.Defaults.Where(d => d.Value is object?[]).Select(d => d.Key).ToHashSet() ?? [];

            var constructor = root.GetProperty("constructor");
            result.DefaultOptions = ReadOptions(constructor.GetProperty("defaults_kwargs"), tupleKeys);
            result.Groups = constructor.GetProperty("groups").EnumerateArray()
                .Select(g => (g.GetProperty("param_indices").EnumerateArray().Select(i => i.GetInt32()).ToArray(), ReadOptions(g.GetProperty("group_kwargs"), tupleKeys)))
                .ToList();

            result.ParamShapes = root.GetProperty("param_shapes").EnumerateArray().Select(ReadShape).ToList();
            result.ParamsInitial = root.GetProperty("params_initial").EnumerateArray().Select(t => ReadTensor(t).AsFloats().ToArray()).ToList();
            result.Steps = root.GetProperty("steps").EnumerateArray().Select(ReadStep).ToList();
            result.Changes = root.TryGetProperty("lr_changes", out var changes)
                ? changes.EnumerateArray().Select(c => new HyperparameterChange(
                    c.GetProperty("before_step").GetInt32(),
                    c.GetProperty("group").GetInt32(),
                    c.GetProperty("key").GetString()!,
                    ReadValue(c.GetProperty("value"), tupleKeys.Contains(c.GetProperty("key").GetString()!) ? "tuple" : null))).ToList()
                : [];

            var types = root.GetProperty("final_state_dict_types");
            result.FinalStateDict = ReadStateDict(root.GetProperty("final_state_dict"), types);
        }
        catch (KeyNotFoundException e)
        {
            throw new FormatException($"{path} is not a reference case: a required field is missing ({MissingFields(root)}).", e);
        }
        catch (Exception e) when (e is InvalidOperationException or JsonException)
        {
            throw new FormatException($"{path} is not a reference case: {e.Message}", e);
        }

        string folder = System.IO.Path.GetDirectoryName(path) ?? ".";
        string torchFile = System.IO.Path.Combine(folder, result.Name + ".pt");
        result.TorchStateFile = File.Exists(torchFile) ? torchFile : null;

        string resumePath = System.IO.Path.Combine(folder, result.Name + "_after_step3.pt");
        string resumeJson = System.IO.Path.Combine(folder, result.Name + "_after_step3.json");
        if (result.Name.StartsWith("resume_", StringComparison.Ordinal) && File.Exists(resumePath) && File.Exists(resumeJson))
        {
            using var resumeDocument = JsonDocument.Parse(File.ReadAllBytes(resumeJson));
            result.ResumeStateFile = resumePath;
            result.ResumeAfterStep = 3;
            result.ResumeParams = resumeDocument.RootElement.GetProperty("params_after_step3").EnumerateArray()
                .Select(t => ReadTensor(t).AsFloats().ToArray()).ToList();
        }

        return result;
    }

    private static readonly string[] s_requiredFields =
        ["optimizer", "constructor", "param_shapes", "params_initial", "steps", "final_state_dict", "final_state_dict_types"];

    private static string MissingFields(JsonElement root)
    {
        var missing = root.ValueKind == JsonValueKind.Object
            ? s_requiredFields.Where(field => !root.TryGetProperty(field, out _)).ToList()
            : [.. s_requiredFields];
        return missing.Count > 0
            ? "top-level fields " + string.Join(", ", missing.Select(f => "'" + f + "'"))
            : "a nested field of 'constructor', 'steps' or 'final_state_dict'";
    }

    /// <summary>
    /// Reads a state dict in the case format, restoring Python types from the recorded type names (tuples, ints).
    /// </summary>
    public static OptimizerStateDict ReadStateDict(JsonElement stateDict, JsonElement types)
    {
        var state = new OrderedDictionary<long, OrderedDictionary<string, object?>>();
        foreach (var property in stateDict.GetProperty("state").EnumerateObject())
        {
            var entries = new OrderedDictionary<string, object?>();
            var entryTypes = types.GetProperty("state").GetProperty(property.Name);
            foreach (var entry in property.Value.EnumerateObject())
            {
                entries[entry.Name] = ReadValue(entry.Value, entryTypes.GetProperty(entry.Name).GetString());
            }

            state[long.Parse(property.Name, System.Globalization.CultureInfo.InvariantCulture)] = entries;
        }

        var groups = new List<OrderedDictionary<string, object?>>();
        var groupTypes = types.GetProperty("param_groups").EnumerateArray().ToList();
        int index = 0;
        foreach (var group in stateDict.GetProperty("param_groups").EnumerateArray())
        {
            var dict = new OrderedDictionary<string, object?>();
            foreach (var property in group.EnumerateObject())
            {
                string? typeName = groupTypes[index].TryGetProperty(property.Name, out var t) ? t.GetString() : null;
                dict[property.Name] = ReadValue(property.Value, typeName);
            }

            groups.Add(dict);
            index++;
        }

        return new OptimizerStateDict(state, groups);
    }

    /// <summary>Reads a JSON value as a Python value; <paramref name="typeName"/> picks tuple over list.</summary>
    public static object? ReadValue(JsonElement value, string? typeName) => value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Number => ReadNumber(value),
        JsonValueKind.Array when typeName is not null && typeName.StartsWith("tuple", StringComparison.Ordinal) =>
            value.EnumerateArray().Select(v => ReadValue(v, null)).ToArray(),
        JsonValueKind.Array => value.EnumerateArray().Select(v => ReadValue(v, null)).ToList(),
        JsonValueKind.Object when value.TryGetProperty("dtype", out _) => ReadTensor(value),
        _ => throw new FormatException($"Unexpected JSON value {value.GetRawText()}."),
    };

    /// <summary>
    /// Reads a tensor <c>{"dtype", "shape", "data"}</c>. A float32 element is an exact float32 printed as a double. An
    /// int64 element, such as ASGD's <c>eta</c> after an int <c>lr</c>, is a JSON integer.
    /// </summary>
    public static Tensor ReadTensor(JsonElement tensor)
    {
        string dtypeName = tensor.GetProperty("dtype").GetString()!;
        var shape = ReadShape(tensor.GetProperty("shape"));
        var elements = tensor.GetProperty("data").EnumerateArray();
        bool known = DTypes.TryParseTorchName(dtypeName, out var dtype);
        if (known && dtype == DType.Float32)
        {
            return Tensor.FromFloats(elements.Select(v => (float)v.GetDouble()).ToArray(), shape);
        }

        if (known && dtype == DType.Int64)
        {
            var data = new byte[checked(elements.Count() * sizeof(long))];
            int offset = 0;
            foreach (var element in elements)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(offset), element.GetInt64());
                offset += sizeof(long);
            }

            return new Tensor(DType.Int64, shape, data);
        }

        throw new FormatException($"Only float32 and int64 tensors are supported in reference cases, found dtype '{dtypeName}'.");
    }

    private static object ReadNumber(JsonElement value)
    {
        // Python's json writes floats with a '.' or an exponent and ints without: that keeps int apart from float.
        string raw = value.GetRawText();
        return raw.IndexOfAny(['.', 'e', 'E']) >= 0 ? value.GetDouble() : (object)value.GetInt64();
    }

    private static long[] ReadShape(JsonElement shape) => shape.EnumerateArray().Select(s => s.GetInt64()).ToArray();

    private static IReadOnlyList<KeyValuePair<string, object?>> ReadOptions(JsonElement options, HashSet<string> tupleKeys) =>
        options.EnumerateObject().Select(p => new KeyValuePair<string, object?>(p.Name, ReadValue(p.Value, tupleKeys.Contains(p.Name) ? "tuple" : null))).ToList();

    private static ReferenceStep ReadStep(JsonElement step) => new(
        step.GetProperty("step").GetInt32(),
        step.GetProperty("grads").EnumerateArray().Select(g => g.ValueKind == JsonValueKind.Null ? null : ReadTensor(g).AsFloats().ToArray()).ToList(),
        step.GetProperty("params_after").EnumerateArray().Select(p => ReadTensor(p).AsFloats().ToArray()).ToList());
}
