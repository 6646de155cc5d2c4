using System.Diagnostics;
using Azure.Data.Tables;
using Azure.Storage.Blobs;

namespace Orleans.Optim.Tests.Infrastructure;

/// <summary>
/// An Azurite of its own for the tests of one class, started with <c>scripts/azurite.sh</c> on free ports of
/// 127.0.0.1 with a data folder in a temporary folder, and stopped by its PID when the class is done.
/// </summary>
/// <remarks>
/// The script installs Azurite into <c>.tools/azurite</c> when it is missing, which needs the npm registry once;
/// <c>scripts/test.sh</c> does that before the tests run.
/// </remarks>
public sealed class AzuriteFixture : IDisposable
{
    /// <summary>Time allowed for the script, which may first run <c>npm install</c>.</summary>
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(5);

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-azurite-").FullName;
    private readonly string _pidFile;

    /// <summary>Starts Azurite and waits until its three ports accept connections.</summary>
    public AzuriteFixture()
    {
        int[] ports = LoopbackPorts.Free(3);
        BlobPort = ports[0];
        QueuePort = ports[1];
        TablePort = ports[2];
        _pidFile = Path.Combine(_folder, "azurite.pid");

        var start = RunScript(
            ["start", "--blob-port", $"{BlobPort}", "--queue-port", $"{QueuePort}", "--table-port", $"{TablePort}",
             "--location", Path.Combine(_folder, "data"), "--pid-file", _pidFile, "--wait-seconds", "60"],
            StartTimeout);
        if (start.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"scripts/azurite.sh start failed with exit code {start.ExitCode}. When npm cannot be reached, run scripts/azurite.sh install " +
                $"once while online.\n{start.Output}\n{start.Error}");
        }

        Pid = int.Parse(File.ReadAllText(_pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        ConnectionString = RunScript(
            ["connection-string", "--blob-port", $"{BlobPort}", "--queue-port", $"{QueuePort}", "--table-port", $"{TablePort}"],
            TimeSpan.FromSeconds(30)).Output.Trim();
    }

    /// <summary>Blob service port on 127.0.0.1.</summary>
    public int BlobPort { get; }

    /// <summary>Queue service port on 127.0.0.1.</summary>
    public int QueuePort { get; }

    /// <summary>Table service port on 127.0.0.1.</summary>
    public int TablePort { get; }

    /// <summary>PID of the Azurite process.</summary>
    public int Pid { get; }

    /// <summary>The development account's connection string for this Azurite, as the script prints it.</summary>
    public string ConnectionString { get; }

    /// <summary>A blob client of this Azurite.</summary>
    public BlobServiceClient Blobs() => new(ConnectionString);

    /// <summary>A table client of this Azurite.</summary>
    public TableServiceClient Tables() => new(ConnectionString);

    /// <summary>
    /// Waits until the membership table lists <paramref name="count"/> active silos of <paramref name="clusterId"/>.
    /// </summary>
    /// <exception cref="TimeoutException">Fewer silos were active after <paramref name="timeout"/>.</exception>
    public async Task WaitForActiveSilosAsync(string clusterId, int count, TimeSpan timeout)
    {
        var table = Tables().GetTableClient("OrleansSiloInstances");
        var deadline = DateTime.UtcNow + timeout;
        int active = 0;
        while (DateTime.UtcNow < deadline)
        {
            active = await CountSilosAsync(table, clusterId, "Active");
            if (active >= count)
            {
                return;
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"The membership table listed {active} of {count} active silos of cluster '{clusterId}' after {timeout}.");
    }

    /// <summary>Counts the membership table's rows of <paramref name="clusterId"/> with the given status, such as <c>Dead</c>.</summary>
    public async Task<int> CountSilosAsync(string clusterId, string status) =>
        await CountSilosAsync(Tables().GetTableClient("OrleansSiloInstances"), clusterId, status);

    private static async Task<int> CountSilosAsync(TableClient table, string clusterId, string status)
    {
        int count = 0;
        try
        {
            await foreach (var row in table.QueryAsync<TableEntity>(e => e.PartitionKey == clusterId))
            {
                if (row.GetString("Status") == status)
                {
                    count++;
                }
            }
        }
        catch (Azure.RequestFailedException e) when (e.Status == 404)
        {
            // The first silo has not created the table yet.
        }

        return count;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        RunScript(["stop", "--pid-file", _pidFile], TimeSpan.FromSeconds(30));

        // The script stops only the PID it recorded; make sure that process is gone before deleting its data folder.
        try
        {
            using var process = Process.GetProcessById(Pid);
            if (!process.HasExited && process.ProcessName == "node")
            {
                process.Kill();
                process.WaitForExit(10_000);
            }
        }
        catch (ArgumentException)
        {
            // No process has that PID any more.
        }

        Directory.Delete(_folder, recursive: true);
    }

    private static CommandResult RunScript(IEnumerable<string> arguments, TimeSpan timeout)
    {
        var startInfo = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(Path.Combine(RepositoryPaths.Root, "scripts", "azurite.sh"));
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("Failed to start bash.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"scripts/azurite.sh {string.Join(' ', arguments)} did not finish within {timeout}.");
        }

        return new CommandResult(process.ExitCode, output.Result, error.Result);
    }
}
