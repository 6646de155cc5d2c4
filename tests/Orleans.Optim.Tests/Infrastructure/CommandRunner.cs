using System.Diagnostics;
using Orleans.Optim.Cli.Commands;

namespace Orleans.Optim.Tests.Infrastructure;

/// <summary>The output and exit code of a finished process.</summary>
/// <param name="ExitCode">Exit code.</param>
/// <param name="Output">Standard output.</param>
/// <param name="Error">Standard error.</param>
public sealed record CommandResult(int ExitCode, string Output, string Error);

/// <summary>Runs the built <c>client</c> command as a separate process, as a user does.</summary>
public static class CommandRunner
{
    /// <summary>Runs <c>dotnet client.dll</c> with the arguments and waits for it, killing it after <paramref name="timeout"/>.</summary>
    /// <param name="arguments">Command-line arguments of the client.</param>
    /// <param name="workingDirectory">Working directory of the client.</param>
    /// <param name="timeout">Time limit; 3 minutes when <see langword="null"/>.</param>
    /// <param name="environment">
    /// Environment variables to set. The client's Azure Storage and TLS password variables are removed unless they are
    /// given here, so that a developer's own settings do not turn the embedded cluster into a remote one or open a
    /// certificate file.
    /// </param>
    public static CommandResult RunClient(
        IEnumerable<string> arguments,
        string workingDirectory,
        TimeSpan? timeout = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        startInfo.Environment.Remove(ClusterOptions.AzureStorageVariable);
        startInfo.Environment.Remove(ClusterOptions.TlsPasswordVariable);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[name] = value;
        }

        startInfo.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "client.dll"));
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("Failed to start dotnet.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        var limit = timeout ?? TimeSpan.FromMinutes(3);
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"client {string.Join(' ', arguments)} did not finish within {limit}.");
        }

        return new CommandResult(process.ExitCode, output.Result, error.Result);
    }
}
