using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Step times of PyTorch's <c>Adam</c> and <c>SGD</c> on one thread, measured by a Python child process.</summary>
/// <param name="TorchVersion">The child's <c>torch.__version__</c>.</param>
/// <param name="CpuCapability">Which vector instructions torch's CPU kernels use, as <c>torch.__config__.show()</c> reports it.</param>
/// <param name="AdamSeconds">Time of each timed <c>Adam.step()</c>.</param>
/// <param name="SgdSeconds">Time of each timed <c>SGD.step()</c> with momentum.</param>
public sealed record TorchTimings(string TorchVersion, string CpuCapability, double[] AdamSeconds, double[] SgdSeconds);

/// <summary>
/// Runs torch's optimizers on one float32 parameter in a Python process with one thread, the baseline of the
/// kernel benchmark.
/// </summary>
public static class TorchBaseline
{
    /// <summary>The interpreter that has Debian's <c>python3-torch</c> (PyTorch 1.13).</summary>
    public const string DefaultInterpreter = "/usr/bin/python3";

    // One parameter of N elements with a fixed gradient. Each optimizer takes one warm-up step (which creates its
    // state), then R timed steps. Both optimizers use the hyperparameters of the C# workloads.
    private const string Script = """
        import json, re, sys, time
        import torch

        torch.set_num_threads(1)
        elements, repetitions = int(sys.argv[1]), int(sys.argv[2])
        generator = torch.Generator().manual_seed(0)
        param = (torch.rand(elements, generator=generator) * 2 - 1).requires_grad_(True)
        param.grad = torch.rand(elements, generator=generator) * 2 - 1

        def time_steps(optimizer):
            optimizer.step()
            times = []
            for _ in range(repetitions):
                start = time.perf_counter()
                optimizer.step()
                times.append(time.perf_counter() - start)
            return times

        adam = time_steps(torch.optim.Adam([param], lr=1e-3))
        sgd = time_steps(torch.optim.SGD([param], lr=1e-3, momentum=0.9))
        capability = re.search(r"CPU capability usage: (\S+)", torch.__config__.show())
        print(json.dumps({
            "torch_version": torch.__version__,
            "cpu_capability": capability.group(1) if capability else "unknown",
            "adam_s": adam,
            "sgd_s": sgd,
        }))
        """;

    /// <summary>
    /// Runs the script and returns its timings, or <see langword="null"/> with <paramref name="skipReason"/> set
    /// when the interpreter or torch is missing, the script fails or it runs longer than <paramref name="timeout"/>.
    /// </summary>
    public static TorchTimings? TryMeasure(string interpreter, int elements, int repetitions, TimeSpan timeout, out string? skipReason)
    {
        var startInfo = new ProcessStartInfo(interpreter)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add("-c");
        startInfo.ArgumentList.Add(Script);
        startInfo.ArgumentList.Add(elements.ToString(System.Globalization.CultureInfo.InvariantCulture));
        startInfo.ArgumentList.Add(repetitions.ToString(System.Globalization.CultureInfo.InvariantCulture));

        // torch.set_num_threads(1) sets the intra-op pool; these keep OpenMP and MKL from starting more threads.
        startInfo.Environment["OMP_NUM_THREADS"] = "1";
        startInfo.Environment["MKL_NUM_THREADS"] = "1";

        Process process;
        try
        {
            process = Process.Start(startInfo) ?? throw new Win32Exception($"Failed to start {interpreter}.");
        }
        catch (Win32Exception e)
        {
            skipReason = $"{interpreter} could not be started ({e.Message}). Install Debian's python3-torch, or pass --python with an interpreter that has torch 1.13.";
            return null;
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                skipReason = $"the torch script did not finish within {timeout.TotalSeconds:F0} s and was stopped.";
                return null;
            }

            if (process.ExitCode != 0)
            {
                string message = LastLine(error.Result);
                skipReason = message.Contains("No module named 'torch'", StringComparison.Ordinal)
                    ? $"{interpreter} cannot import torch. Install Debian's python3-torch (PyTorch 1.13) to compare with PyTorch."
                    : $"the torch script failed with exit code {process.ExitCode}: {message}";
                return null;
            }

            skipReason = null;
            return Parse(output.Result);
        }
    }

    private static TorchTimings Parse(string output)
    {
        using var document = JsonDocument.Parse(output);
        var root = document.RootElement;
        return new TorchTimings(
            root.GetProperty("torch_version").GetString()!,
            root.GetProperty("cpu_capability").GetString()!,
            [.. root.GetProperty("adam_s").EnumerateArray().Select(e => e.GetDouble())],
            [.. root.GetProperty("sgd_s").EnumerateArray().Select(e => e.GetDouble())]);
    }

    private static string LastLine(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no error output)" : lines[^1];
    }
}
