using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>
/// A silo or client in AzureStorage mode given a connection string that is malformed or reaches no storage: each
/// fails with one error line. The unreachable storage is a port of 127.0.0.1 bound by the test without listening.
/// </summary>
public sealed class AzureStorageErrorTests : IDisposable
{
    private const string DevelopmentKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-azure-errors-").FullName;

    [Fact]
    public void SiloRejectsUnreachableStorage()
    {
        int[] ports = LoopbackPorts.Free(2);
        using var storage = LoopbackPorts.BindPortWithoutListener(out int storagePort);
        using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["Clustering"] = "AzureStorage",
            ["AzureStorageConnectionString"] = ConnectionString(storagePort),
            ["SiloPort"] = $"{ports[0]}",
            ["GatewayPort"] = $"{ports[1]}",
        });

        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(90)), "The silo still ran 90 s after it was given unreachable storage.");
        Assert.Equal(1, silo.ExitCode);
        string error = ErrorLine(silo.Output);
        Assert.StartsWith("error: The silo failed to start (AzureStorage clustering", error);
        Assert.Contains($"Connection refused (127.0.0.1:{storagePort})", error);
        Assert.Contains("scripts/azurite.sh start", error);
    }

    [Fact]
    public void SiloRejectsMalformedConnectionString()
    {
        using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["Clustering"] = "AzureStorage",
            ["AzureStorageConnectionString"] = "not-a-connection-string",
        });

        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, silo.ExitCode);
        Assert.StartsWith("error: Invalid Optim:Silo:AzureStorageConnectionString:", silo.Output);
        Assert.Single(silo.Output.Trim().Split('\n'));
    }

    [Fact]
    public void SiloRejectsMissingConnectionString()
    {
        using var silo = SiloProcess.Start(new Dictionary<string, string> { ["Clustering"] = "AzureStorage" });

        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, silo.ExitCode);
        Assert.StartsWith("error: Missing Optim:Silo:AzureStorageConnectionString:", silo.Output);
    }

    [Fact]
    public void SiloRejectsUnknownClustering()
    {
        using var silo = SiloProcess.Start(new Dictionary<string, string> { ["Clustering"] = "Azure" });

        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, silo.ExitCode);
        Assert.StartsWith("error: Invalid Optim:Silo:Clustering 'Azure': expected Localhost or AzureStorage.", silo.Output);
    }

    [Fact]
    public void ClientRejectsUnreachableStorage()
    {
        using var storage = LoopbackPorts.BindPortWithoutListener(out int storagePort);
        var result = CommandRunner.RunClient(
            ["train", "--azure-storage", ConnectionString(storagePort), "--epochs", "1", "--checkpoint-dir", "run"],
            _folder,
            TimeSpan.FromSeconds(90));

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith(
            $"error: Cannot connect to the cluster 'orleans-optim' through the Azure Table membership at http://127.0.0.1:{storagePort}/devstoreaccount1 within 15 s: " +
            $"Connection refused (127.0.0.1:{storagePort}). Check that the storage account accepts connections",
            result.Error);
        Assert.Single(result.Error.Trim().Split('\n'));
    }

    [Fact]
    public void ClientRejectsGatewayWithAzureStorage()
    {
        var result = CommandRunner.RunClient(
            ["train", "--azure-storage", ConnectionString(10002), "--gateway", "30000", "--checkpoint-dir", "run"],
            _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("error: Invalid options: --gateway and --azure-storage both choose the cluster's silos.", result.Error);
    }

    [Fact]
    public void ClientRejectsMalformedConnectionString()
    {
        var result = CommandRunner.RunClient(
            ["train", "--checkpoint-dir", "run"],
            _folder,
            environment: new Dictionary<string, string> { [Cli.Commands.ClusterOptions.AzureStorageVariable] = "not-a-connection-string" });

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith(
            $"error: Invalid Azure Storage connection string in the environment variable {Cli.Commands.ClusterOptions.AzureStorageVariable}:",
            result.Error);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Azurite's development account at <paramref name="port"/> on 127.0.0.1, for every service.</summary>
    private static string ConnectionString(int port) =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DevelopmentKey};" +
        $"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;" +
        $"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";

    /// <summary>The silo's error line; its log lines go to standard output and are mixed into the same buffer.</summary>
    private static string ErrorLine(string output)
    {
        var errors = output.Split('\n').Where(line => line.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        Assert.Single(errors);
        return errors[0].TrimEnd('\r');
    }
}
