using Orleans.Optim.Layout;
using Orleans.Optim.Python;

namespace Orleans.Optim.Wire;

/// <summary>Converts between the core model and its wire form.</summary>
public static class WireConversions
{
    /// <summary>Returns the wire form of a spec.</summary>
    public static OptimizerSpecData ToData(this OptimizerSpec spec) => new()
    {
        Algorithm = spec.Algorithm,
        DefaultOptions = PythonBinary.EncodeOptions(spec.DefaultOptions),
        Groups = spec.Groups
            .Select(g => new ParamGroupSpecData(
                PythonBinary.EncodeOptions(g.Options),
                g.Parameters.Select(p => new ParameterSpecData(p.Name, p.Shape)).ToArray()))
            .ToArray(),
        WorldSize = spec.WorldSize,
        Reduction = (int)spec.Reduction,
        MaxShardElements = spec.MaxShardElements,
        SkipNonFiniteSteps = spec.SkipNonFiniteSteps,
    };

    /// <summary>Returns the core form of a spec.</summary>
    /// <exception cref="FormatException">The encoded options are invalid.</exception>
    public static OptimizerSpec ToSpec(this OptimizerSpecData data) => new()
    {
        Algorithm = data.Algorithm,
        DefaultOptions = PythonBinary.DecodeOptions(data.DefaultOptions).ToList(),
        Groups = data.Groups
            .Select(g => new ParamGroupSpec(
                PythonBinary.DecodeOptions(g.Options).ToList(),
                g.Parameters.Select(p => new ParameterSpec(p.Name, p.Shape)).ToList()))
            .ToList(),
        WorldSize = data.WorldSize,
        Reduction = Enum.IsDefined((GradientReduction)data.Reduction)
            ? (GradientReduction)data.Reduction
            : throw new FormatException($"Invalid gradient reduction {data.Reduction}: expected 0 (mean) or 1 (sum)."),
        MaxShardElements = data.MaxShardElements,
        SkipNonFiniteSteps = data.SkipNonFiniteSteps,
    };

    /// <summary>Returns a byte form of the spec that is equal for equal specs, to tell a repeated create from a conflicting one.</summary>
    public static byte[] CanonicalBytes(this OptimizerSpecData data)
    {
        var value = new object?[]
        {
            data.Algorithm,
            PythonBinary.Decode(data.DefaultOptions),
            data.Groups.Select(g => (object?)new object?[]
            {
                PythonBinary.Decode(g.Options),
                g.Parameters.Select(p => (object?)new object?[] { p.Name, p.Shape.Select(s => (object?)s).ToList() }).ToList(),
            }).ToList(),
            (long)data.WorldSize,
            (long)data.Reduction,
            (long)data.MaxShardElements,
            data.SkipNonFiniteSteps,
        };
        return PythonBinary.Encode(value);
    }

    /// <summary>Returns the layout an optimizer description contains.</summary>
    public static OptimizerLayout ToLayout(this OptimizerDescription description) => new()
    {
        Algorithm = description.Spec.Algorithm,
        Parameters = description.Parameters.Select(p => new ParameterInfo(p.Id, p.Name, p.Shape, p.GroupIndex)).ToList(),
        Shards = description.Shards.Select(s => s.ToShardInfo()).ToList(),
        GroupCount = description.Groups.Length,
        WorldSize = description.Spec.WorldSize,
        Reduction = (GradientReduction)description.Spec.Reduction,
        MaxShardElements = description.Spec.MaxShardElements,
        SkipNonFiniteSteps = description.Spec.SkipNonFiniteSteps,
    };

    /// <summary>Returns the core form of a shard.</summary>
    public static ShardInfo ToShardInfo(this ShardData data) => new(data.Index, data.ParamId, data.Offset, data.Length);

    /// <summary>Returns the wire form of a shard.</summary>
    public static ShardData ToData(this ShardInfo info) => new(info.Index, info.ParamId, info.Offset, info.Length);

    /// <summary>Returns the wire form of a parameter.</summary>
    public static ParameterData ToData(this ParameterInfo info) => new(info.Id, info.Name, info.Shape, info.GroupIndex);
}
