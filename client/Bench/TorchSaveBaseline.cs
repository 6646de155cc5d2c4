using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Times of <c>torch.save(optimizer.state_dict(), path)</c>, measured by a Python child process.</summary>
/// <param name="TorchVersion">The child's <c>torch.__version__</c>.</param>
/// <param name="SaveSeconds">Time of each timed save.</param>
/// <param name="SaveFsyncSeconds">Time of each timed save followed by <c>os.fsync</c> of the file.</param>
/// <param name="FileBytes">Size of the file one save wrote.</param>
public sealed record TorchSaveTimings(string TorchVersion, double[] SaveSeconds, double[] SaveFsyncSeconds, long FileBytes);

/// <summary>
/// Saves the state dict of a torch <c>Adam</c> over parameters of the given sizes, one step in, with
/// <c>torch.save</c>: the baseline of the export and fan-out benchmarks.
/// </summary>
public static class TorchSaveBaseline
{
    // One float32 parameter per size, each with a constant gradient, and Adam(lr=1e-3) after one step, so that every
    // parameter has exp_avg, exp_avg_sq and step. The state dict is taken and saved inside the timed region, once
    // as torch.save leaves it and once followed by fsync, alternating. The file is deleted after each save, as the
    // C# side deletes its files.
    private const string Script = """
        import json, os, sys, time
        import torch

        torch.set_num_threads(1)
        config = json.loads(sys.stdin.read())
        sizes, repetitions, path = config["sizes"], config["repetitions"], config["path"]
        params = [torch.nn.Parameter(torch.full((n,), 0.5)) for n in sizes]
        for p in params:
            p.grad = torch.full(p.shape, 0.25)
        optimizer = torch.optim.Adam(params, lr=1e-3)
        optimizer.step()
        for p in params:
            p.grad = None

        def save_once(fsync):
            start = time.perf_counter()
            torch.save(optimizer.state_dict(), path)
            if fsync:
                descriptor = os.open(path, os.O_RDONLY)
                os.fsync(descriptor)
                os.close(descriptor)
            elapsed = time.perf_counter() - start
            size = os.path.getsize(path)
            os.remove(path)
            return elapsed, size

        save_once(False)
        save_once(True)
        plain, flushed = [], []
        for _ in range(repetitions):
            plain.append(save_once(False))
            flushed.append(save_once(True))
        print(json.dumps({
            "torch_version": torch.__version__,
            "save_s": [elapsed for elapsed, _ in plain],
            "save_fsync_s": [elapsed for elapsed, _ in flushed],
            "file_bytes": plain[0][1],
        }))
        """;

    /// <summary>
    /// Runs the script and returns its timings, or <see langword="null"/> with <paramref name="skipReason"/> set
    /// when the interpreter or torch is missing, the script fails or it runs longer than <paramref name="timeout"/>.
    /// </summary>
    /// <param name="interpreter">Python with PyTorch 1.13.</param>
    /// <param name="sizes">Number of elements of each parameter.</param>
    /// <param name="repetitions">Timed saves after one untimed save.</param>
    /// <param name="path">File the saves write and delete.</param>
    /// <param name="timeout">Longest time the child may run.</param>
    /// <param name="skipReason">Why the baseline is missing, when it is.</param>
    public static TorchSaveTimings? TryMeasure(string interpreter, IReadOnlyList<int> sizes, int repetitions, string path, TimeSpan timeout, out string? skipReason)
    {
        var startInfo = new ProcessStartInfo(interpreter)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add("-c");
        startInfo.ArgumentList.Add(Script);
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
            try
            {
                // The sizes go through standard input, because thousands of them would make a long command line.
                process.StandardInput.Write(JsonSerializer.Serialize(new { sizes, repetitions, path }));
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // The child exited before reading its input, and its exit code and error output give the reason.
            }

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
            using var document = JsonDocument.Parse(output.Result);
            var root = document.RootElement;
            return new TorchSaveTimings(
                root.GetProperty("torch_version").GetString()!,
                [.. root.GetProperty("save_s").EnumerateArray().Select(e => e.GetDouble())],
                [.. root.GetProperty("save_fsync_s").EnumerateArray().Select(e => e.GetDouble())],
                root.GetProperty("file_bytes").GetInt64());
        }
    }

    private static string LastLine(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no error output)" : lines[^1];
    }
}
