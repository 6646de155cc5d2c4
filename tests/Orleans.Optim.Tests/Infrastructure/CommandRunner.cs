using System.Diagnostics;

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
    public static CommandResult RunClient(IEnumerable<string> arguments, string workingDirectory, TimeSpan? timeout = null)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
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
