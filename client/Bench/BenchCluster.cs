using System.Net;
using Orleans.Optim.Cli.Commands;
using Orleans.Optim.Client;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Silo processes started for a benchmark and a client connected to all of their gateways.</summary>
public sealed class BenchCluster : IAsyncDisposable
{
    private readonly SiloProcesses _silos;
    private readonly ClusterConnection _connection;

    private BenchCluster(SiloProcesses silos, ClusterConnection connection)
    {
        _silos = silos;
        _connection = connection;
    }

    /// <summary>The connected client's grain factory.</summary>
    public IGrainFactory Grains => _connection.Client;

    /// <summary>PIDs of the silo processes.</summary>
    public IEnumerable<int> Pids => _silos.Pids;

    /// <summary>Returns the CPU time that all silo processes used so far.</summary>
    public TimeSpan SiloCpuTime() => _silos.CpuTimes().Aggregate(TimeSpan.Zero, (sum, time) => sum + time);

    /// <summary>Starts <paramref name="silos"/> silo processes on 127.0.0.1 and connects a client to them.</summary>
    /// <param name="siloAssembly">Path of <c>Orleans.Optim.Silo.dll</c>.</param>
    /// <param name="silos">Number of silo processes.</param>
    /// <param name="progress">Receives one line per stage.</param>
    public static async Task<BenchCluster> StartAsync(string siloAssembly, int silos, TextWriter progress)
    {
        progress.WriteLine($"Starting {silos} silo process{(silos == 1 ? "" : "es")} from {siloAssembly}.");
        var processes = await SiloProcesses.StartAsync(siloAssembly, silos, TimeSpan.FromMinutes(2));
        try
        {
            progress.WriteLine($"Silo PIDs: {string.Join(", ", processes.Pids)}.");
            var connection = await ClusterOptions.ConnectThroughGatewaysAsync(
                [.. processes.GatewayPorts.Select(port => new IPEndPoint(IPAddress.Loopback, port))],
                processes.ClusterId,
                ClientConnection.DefaultServiceId,
                TimeSpan.FromMinutes(5),
                tls: null,
                progress);
            return new BenchCluster(processes, connection);
        }
        catch
        {
            processes.Dispose();
            throw;
        }
    }

    /// <summary>Closes the client and kills the silo processes by their PIDs.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _connection.DisposeAsync();
        }
        finally
        {
            _silos.Dispose();
        }
    }
}
