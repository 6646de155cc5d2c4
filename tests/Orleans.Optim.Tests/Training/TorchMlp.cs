using System.Runtime.InteropServices;
using System.Text.Json;
using Orleans.Optim.Cli.Training;
using Orleans.Optim.Tests.Infrastructure;
using Xunit;

namespace Orleans.Optim.Tests.Training;

/// <summary>
/// Runs the same MLP in real PyTorch: loads our parameters into <c>nn.Sequential(Linear, ReLU, Linear)</c> with a
/// strict <c>load_state_dict</c> and returns torch's cross-entropy loss, argmax accuracy and gradients.
/// </summary>
internal static class TorchMlp
{
    // The state dict is built from our names and shapes, so a wrong name or shape fails load_state_dict(strict=True).
    private const string Script = """
        import json, sys
        import numpy as np
        import torch
        import torch.nn.functional as F
        from torch import nn

        directory = sys.argv[1]
        with open(f"{directory}/manifest.json") as file:
            manifest = json.load(file)

        torch.set_num_threads(1)
        model = nn.Sequential(
            nn.Linear(manifest["input_size"], manifest["hidden_size"]),
            nn.ReLU(),
            nn.Linear(manifest["hidden_size"], manifest["class_count"]))

        state = {}
        for index, (name, shape) in enumerate(zip(manifest["names"], manifest["shapes"])):
            values = np.fromfile(f"{directory}/parameter{index}.bin", dtype="<f4")
            state[name] = torch.from_numpy(values.copy()).reshape(shape)
        model.load_state_dict(state, strict=True)

        sample_count = manifest["sample_count"]
        inputs = torch.from_numpy(np.fromfile(f"{directory}/inputs.bin", dtype="<f4").copy()).reshape(sample_count, -1)
        labels = torch.from_numpy(np.fromfile(f"{directory}/labels.bin", dtype="<i4").astype(np.int64))

        logits = model(inputs)
        loss = F.cross_entropy(logits, labels)
        loss.backward()

        parameters = dict(model.named_parameters())
        for index, name in enumerate(manifest["names"]):
            parameters[name].grad.numpy().astype("<f4").tofile(f"{directory}/gradient{index}.bin")

        accuracy = (logits.argmax(dim=1) == labels).double().mean().item()
        print(json.dumps({"loss": loss.item(), "accuracy": accuracy, "dtype": str(logits.dtype), "torch": torch.__version__}))
        """;

    /// <summary>Loss, accuracy and gradients that torch computed.</summary>
    public sealed record Result(float Loss, double Accuracy, float[][] Gradients, string TorchVersion);

    /// <summary>Runs the forward and backward pass of <paramref name="mlp"/> in torch on the given batch.</summary>
    public static Result Run(Mlp mlp, float[][] parameters, float[] inputs, int[] labels)
    {
        // MemoryMarshal writes the machine's byte order, and the script reads little-endian ("<f4", "<i4").
        Assert.True(BitConverter.IsLittleEndian, "These tests exchange raw little-endian floats with Python.");

        var directory = Directory.CreateTempSubdirectory("orleans-optim-mlp-");
        try
        {
            var manifest = new
            {
                input_size = mlp.InputSize,
                hidden_size = mlp.HiddenSize,
                class_count = mlp.ClassCount,
                sample_count = labels.Length,
                names = mlp.Parameters.Select(p => p.Name).ToArray(),
                shapes = mlp.Parameters.Select(p => p.Shape.ToArray()).ToArray(),
            };
            File.WriteAllText(Path.Combine(directory.FullName, "manifest.json"), JsonSerializer.Serialize(manifest));

            for (int i = 0; i < parameters.Length; i++)
            {
                WriteFloats(Path.Combine(directory.FullName, $"parameter{i}.bin"), parameters[i]);
            }

            WriteFloats(Path.Combine(directory.FullName, "inputs.bin"), inputs);
            File.WriteAllBytes(Path.Combine(directory.FullName, "labels.bin"), MemoryMarshal.AsBytes(labels.AsSpan()).ToArray());

            string output = PythonTorch.Run(Script, [directory.FullName], TimeSpan.FromMinutes(2));
            using var json = JsonDocument.Parse(output);
            var root = json.RootElement;
            Assert.Equal("torch.float32", root.GetProperty("dtype").GetString());

            var gradients = new float[parameters.Length][];
            for (int i = 0; i < parameters.Length; i++)
            {
                gradients[i] = ReadFloats(Path.Combine(directory.FullName, $"gradient{i}.bin"));
            }

            return new Result(
                (float)root.GetProperty("loss").GetDouble(),
                root.GetProperty("accuracy").GetDouble(),
                gradients,
                root.GetProperty("torch").GetString() ?? "");
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static void WriteFloats(string path, float[] values) =>
        File.WriteAllBytes(path, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static float[] ReadFloats(string path) =>
        MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray();
}
