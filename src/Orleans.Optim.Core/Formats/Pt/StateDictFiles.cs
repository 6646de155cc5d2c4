using Orleans.Optim.Python;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Reads and writes the two kinds of <c>.pt</c> file a PyTorch user saves: an optimizer state dict
/// (<c>torch.save(optimizer.state_dict())</c>) and a model state dict (<c>torch.save(model.state_dict())</c>).
/// </summary>
public static class StateDictFiles
{
    /// <summary>Writes an optimizer state dict that <c>torch.load</c> and <c>optimizer.load_state_dict</c> accept.</summary>
    public static void WriteOptimizer(string path, OptimizerStateDict stateDict) => PtWriter.WriteFile(path, stateDict.ToPython());

    /// <summary>Reads an optimizer state dict, allowing only the globals such a file needs.</summary>
    /// <exception cref="PtFormatException">The file is not a valid <c>.pt</c> or references a forbidden global.</exception>
    /// <exception cref="StateDictException">The file holds something other than an optimizer state dict.</exception>
    public static OptimizerStateDict ReadOptimizer(string path)
    {
        var root = PtReader.ReadFile(path);
        try
        {
            return OptimizerStateDict.FromPython(root);
        }
        catch (StateDictException e)
        {
            throw new StateDictException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes a model state dict: a <c>collections.OrderedDict</c> of parameter name to float32 tensor, in order, as
    /// <c>model.state_dict()</c> saves it.
    /// </summary>
    /// <exception cref="ArgumentException">A name repeats, or values do not match their shape.</exception>
    public static void WriteModel(string path, IReadOnlyList<(string Name, long[] Shape, float[] Values)> parameters)
    {
        var root = new PythonOrderedDict();
        foreach (var (name, shape, values) in parameters)
        {
            if (root.ContainsKey(name))
            {
                throw new ArgumentException($"Parameter name '{name}' appears twice; a model state dict needs unique names.", nameof(parameters));
            }

            if (values.LongLength != Tensor.CountElements(shape))
            {
                throw new ArgumentException(
                    $"Parameter '{name}' has {values.Length} values, but shape {Tensor.FormatShape(shape)} needs {Tensor.CountElements(shape)}.",
                    nameof(parameters));
            }

            root[name] = Tensor.FromFloats(values, shape);
        }

        PtWriter.WriteFile(path, root);
    }

    /// <summary>Reads a model state dict: parameter name to tensor, in the file's order.</summary>
    /// <exception cref="PtFormatException">The file is not a valid <c>.pt</c> or references a forbidden global.</exception>
    /// <exception cref="StateDictException">The file holds something other than names mapped to tensors.</exception>
    public static OrderedDictionary<string, Tensor> ReadModel(string path)
    {
        var root = PtReader.ReadFile(path);
        var result = new OrderedDictionary<string, Tensor>();
        foreach (var (key, value) in root)
        {
            if (key is not string name || value is not Tensor tensor)
            {
                throw new StateDictException(
                    $"{path}: expected a model state dict (parameter names to tensors), found key {PythonValues.Format(key)} with a {PythonValues.TypeName(value)}. " +
                    "Is this an optimizer state dict?");
            }

            result[name] = tensor;
        }

        return result;
    }
}
