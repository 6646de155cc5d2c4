using System.Diagnostics;

namespace Orleans.Optim.Tests.Infrastructure;

/// <summary>
/// Runs Python scripts under Debian's <c>/usr/bin/python3</c>, which has <c>python3-torch</c> (PyTorch 1.13),
/// the oracle for numerics and <c>.pt</c> interop.
/// </summary>
public static class PythonTorch
{
    /// <summary>Path of the interpreter that has Debian's torch package.</summary>
    public const string Interpreter = "/usr/bin/python3";

    /// <summary>
    /// Runs <paramref name="script"/> with the given arguments and returns its standard output.
    /// </summary>
    /// <exception cref="InvalidOperationException">The script failed or ran longer than <paramref name="timeout"/>.</exception>
    public static string Run(string script, IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        var startInfo = new ProcessStartInfo(Interpreter)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add("-c");
        startInfo.ArgumentList.Add(script);
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        startInfo.Environment["OMP_NUM_THREADS"] = "1";

        using var process = Process.Start(startInfo)
            ?? throw new InvalidOperationException($"Failed to start {Interpreter}. Install Debian's python3-torch (see README.md).");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"The Python script timed out after {timeout ?? TimeSpan.FromMinutes(2)}.");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"The Python script failed with exit code {process.ExitCode}. If torch is missing, install Debian's python3-torch (see README.md).\n{stderr.Result}");
        }

        return stdout.Result;
    }
}
