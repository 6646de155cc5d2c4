using System.Diagnostics;
using System.Text;

namespace Orleans.Optim.Tests.Infrastructure;

/// <summary>
/// A silo host (<c>Orleans.Optim.Silo.dll</c>) running as a separate process with <c>--Optim:Silo:...</c> options,
/// as README.md starts it. Dispose kills the process by its PID if it still runs.
/// </summary>
public sealed class SiloProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private SiloProcess(Process process)
    {
        _process = process;
    }

    /// <summary>PID of the silo process.</summary>
    public int Pid => _process.Id;

    /// <summary>Whether the process has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Exit code of the exited process.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Standard output and standard error so far, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <c>dotnet Orleans.Optim.Silo.dll</c> with the given settings, each as <c>--Optim:Silo:KEY=VALUE</c>.</summary>
    /// <param name="settings">Settings under <c>Optim:Silo</c>.</param>
    /// <param name="environment">Environment variables to set, such as <c>Optim__Silo__Tls__CertificatePassword</c>.</param>
    public static SiloProcess Start(IEnumerable<KeyValuePair<string, string>> settings, IReadOnlyDictionary<string, string>? environment = null)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[name] = value;
        }

        startInfo.ArgumentList.Add(RepositoryPaths.SiloAssembly);
        foreach (var (key, value) in settings)
        {
            startInfo.ArgumentList.Add($"--Optim:Silo:{key}={value}");
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("Failed to start a silo.");
        var silo = new SiloProcess(process);
        process.OutputDataReceived += (_, e) => silo.Append(e.Data);
        process.ErrorDataReceived += (_, e) => silo.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return silo;
    }

    /// <summary>Waits for the process to exit.</summary>
    /// <returns>Whether it exited within <paramref name="timeout"/>.</returns>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            return false;
        }

        // Waiting again without a timeout lets the asynchronous output readers finish.
        _process.WaitForExit();
        return true;
    }

    /// <summary>Waits until the process has printed <paramref name="text"/>, polling its output.</summary>
    /// <returns>Whether the text appeared within <paramref name="timeout"/>; false at once when the process exits without it.</returns>
    public bool WaitForOutput(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Output.Contains(text, StringComparison.Ordinal))
            {
                return true;
            }

            if (_process.HasExited)
            {
                // The output readers may still hold the last lines.
                _process.WaitForExit();
                return Output.Contains(text, StringComparison.Ordinal);
            }

            Thread.Sleep(100);
        }

        return false;
    }

    /// <summary>Kills the silo process at once, as a crash would, and waits for it to exit.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Kill();
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}
