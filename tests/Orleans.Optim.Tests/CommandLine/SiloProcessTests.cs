using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>Two silo processes started separately and the training client connecting to them, as README.md shows.</summary>
public sealed class SiloProcessTests : IDisposable
{
    private readonly List<Process> _silos = [];
    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-silos-").FullName;

    [Fact]
    public void TrainingRunsOnSeparateSilos()
    {
        int[] siloPorts = FreePorts(2);
        int[] gatewayPorts = FreePorts(2);
        string clusterId = "test-" + Guid.NewGuid().ToString("N")[..8];
        StartSilo(siloPorts[0], gatewayPorts[0], siloPorts[0], clusterId);
        StartSilo(siloPorts[1], gatewayPorts[1], siloPorts[0], clusterId);
        WaitForPort(gatewayPorts[0]);
        WaitForPort(gatewayPorts[1]);

        var result = CommandRunner.RunClient(
            ["train", "--epochs", "2", "--gateway", $"127.0.0.1:{gatewayPorts[0]}", "--gateway", gatewayPorts[1].ToString(), "--cluster-id", clusterId, "--checkpoint-dir", "run"],
            _folder);

        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains($"Connected to the cluster through 127.0.0.1 port(s) {gatewayPorts[0]}, {gatewayPorts[1]}", result.Output);
        Assert.Contains("4 parameters in 4 shards on 2 silo(s)", result.Output);
        Assert.Contains("epoch   2/2", result.Output);
        Assert.True(File.Exists(Path.Combine(_folder, "run", "epoch-0002", "optimizer.pt")));

        var reused = CommandRunner.RunClient(
            ["train", "--epochs", "1", "--gateway", gatewayPorts[0].ToString(), "--cluster-id", clusterId, "--checkpoint-dir", "other", "--name", NameOf(result.Output)],
            _folder);

        Assert.Equal(1, reused.ExitCode);
        Assert.Contains($"Optimizer '{NameOf(result.Output)}' already exists in the cluster", reused.Error);
    }

    [Fact]
    public void SiloRejectsInvalidPort()
    {
        var startInfo = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        startInfo.ArgumentList.Add(RepositoryPaths.SiloAssembly);
        startInfo.ArgumentList.Add("--Optim:Silo:SiloPort=abc");
        using var process = Process.Start(startInfo)!;
        string error = process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(60_000));

        Assert.Equal(1, process.ExitCode);
        Assert.Equal("error: Invalid Optim:Silo:SiloPort 'abc': expected a whole number.", error.Trim());
    }

    private static string NameOf(string trainOutput)
    {
        int start = trainOutput.IndexOf("Optimizer '", StringComparison.Ordinal) + "Optimizer '".Length;
        return trainOutput[start..trainOutput.IndexOf('\'', start)];
    }

    public void Dispose()
    {
        foreach (var silo in _silos)
        {
            if (!silo.HasExited)
            {
                silo.Kill(entireProcessTree: true);
                silo.WaitForExit(10_000);
            }

            silo.Dispose();
        }

        Directory.Delete(_folder, recursive: true);
    }

    private void StartSilo(int siloPort, int gatewayPort, int primaryPort, string clusterId)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(RepositoryPaths.SiloAssembly);
        startInfo.ArgumentList.Add($"--Optim:Silo:SiloPort={siloPort}");
        startInfo.ArgumentList.Add($"--Optim:Silo:GatewayPort={gatewayPort}");
        startInfo.ArgumentList.Add($"--Optim:Silo:PrimarySiloPort={primaryPort}");
        startInfo.ArgumentList.Add($"--Optim:Silo:ClusterId={clusterId}");
        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("Failed to start a silo.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _silos.Add(process);
    }

    private static void WaitForPort(int port)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(200);
            }
        }

        throw new TimeoutException($"No silo gateway listened on 127.0.0.1:{port} within 60 s.");
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        int[] ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }
}
