using System.Buffers.Binary;
using System.CommandLine;
using System.Globalization;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Python;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Cli.Commands;

/// <summary><c>client inspect</c>: prints what an optimizer, model or scheduler <c>.pt</c> state dict contains.</summary>
public static class InspectCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "A .pt file written by torch.save or by this project." };
        var command = new Command("inspect", "Print the param groups and per-parameter state of an optimizer .pt, the tensors of a model .pt, or the entries of a scheduler .pt.") { file };
        command.SetAction(parseResult =>
        {
            string path = parseResult.GetValue(file)!;
            if (!File.Exists(path))
            {
                throw new FileNotFoundException(
                    Directory.Exists(path) ? $"'{path}' is a folder; give a .pt file." : $"File '{path}' not found.", path);
            }

            Print(path, PtReader.ReadFile(path), Console.Out);
            return 0;
        });
        return command;
    }

    /// <summary>Prints the state dict read from <paramref name="path"/>.</summary>
    /// <exception cref="StateDictException">The file contains neither an optimizer nor a model state dict.</exception>
    public static void Print(string path, OrderedDictionary<object, object?> root, TextWriter output)
    {
        if (root.ContainsKey("state") && root.ContainsKey("param_groups"))
        {
            PrintOptimizer(path, OptimizerStateDict.FromPython(root), output);
        }
        else if (root.Count > 0 && root.All(kv => kv.Key is string && kv.Value is Tensor))
        {
            PrintModel(path, root, output);
        }
        else if (root.ContainsKey("last_epoch") && root.ContainsKey("_last_lr"))
        {
            output.WriteLine($"{path}: learning-rate scheduler state dict, {root.Count} entries");
            foreach (var (key, value) in root)
            {
                output.WriteLine($"  {key,-28} {PythonValues.Format(value)}");
            }
        }
        else
        {
            throw new StateDictException(
                $"{path} contains a {PythonValues.TypeName(root)} with keys {string.Join(", ", root.Keys.Take(5).Select(PythonValues.Format))}: " +
                "neither an optimizer state dict ('state' and 'param_groups'), a model state dict (names to tensors) nor a scheduler state dict.");
        }
    }

    private static void PrintOptimizer(string path, OptimizerStateDict stateDict, TextWriter output)
    {
        output.WriteLine($"{path}: optimizer state dict, {stateDict.ParamGroups.Count} param group(s), state for {stateDict.State.Count} param(s)");
        for (int g = 0; g < stateDict.ParamGroups.Count; g++)
        {
            output.WriteLine($"param_groups[{g}]:");
            foreach (var (key, value) in stateDict.ParamGroups[g])
            {
                output.WriteLine($"  {key,-16} {PythonValues.Format(value)}");
            }
        }

        foreach (var (id, entries) in stateDict.State)
        {
            output.WriteLine($"state[{id}]:");
            foreach (var (name, value) in entries)
            {
                output.WriteLine($"  {name,-16} {Describe(value)}");
            }
        }
    }

    private static void PrintModel(string path, OrderedDictionary<object, object?> root, TextWriter output)
    {
        long total = root.Values.Sum(v => ((Tensor)v!).NumElements);
        output.WriteLine($"{path}: model state dict, {root.Count} tensor(s), {total.ToString("N0", CultureInfo.InvariantCulture)} elements");
        foreach (var (name, value) in root)
        {
            output.WriteLine($"  {name,-24} {Describe(value)}");
        }
    }

    private static string Describe(object? value)
    {
        if (value is not Tensor tensor)
        {
            return $"{PythonValues.TypeName(value)} {PythonValues.Format(value)}";
        }

        string text = $"{tensor.DType.TorchName()} {Tensor.FormatShape(tensor.Shape)}";
        if (tensor.Shape.Length == 0)
        {
            text += " = " + ScalarText(tensor);
        }
        else
        {
            text += $" ({tensor.NumElements.ToString("N0", CultureInfo.InvariantCulture)} elements)";
        }

        return text;
    }

    private static string ScalarText(Tensor tensor) => tensor.DType switch
    {
        DType.Float32 => PythonValues.FormatFloat(BinaryPrimitives.ReadSingleLittleEndian(tensor.Data)),
        DType.Float64 => PythonValues.FormatFloat(BinaryPrimitives.ReadDoubleLittleEndian(tensor.Data)),
        DType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(tensor.Data).ToString(CultureInfo.InvariantCulture),
        _ => "(" + tensor.DType.TorchName() + ")",
    };
}
