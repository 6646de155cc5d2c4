using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Orleans.Optim.Cli.Bench;

/// <summary>
/// Silo host processes (<c>Orleans.Optim.Silo.dll</c>) that a benchmark starts on free ports of 127.0.0.1 with
/// localhost clustering, one cluster of its own, and stops by their PIDs.
/// </summary>
/// <remarks>
/// Dispose kills exactly the processes this instance started. The same happens on Ctrl+C, SIGTERM and the end of
/// this process, so that no silo outlives a benchmark that failed or was interrupted.
/// </remarks>
public sealed class SiloProcesses : IDisposable
{
    /// <summary>Name of the silo host's assembly.</summary>
    public const string SiloAssembly = "Orleans.Optim.Silo.dll";

    private const int MaxOutputLines = 40;

    private readonly List<Process> _processes = [];
    private readonly List<Queue<string>> _outputs = [];
    private readonly PosixSignalRegistration _interrupt;
    private readonly PosixSignalRegistration _terminate;
    private int _disposed;

    private SiloProcesses(string clusterId)
    {
        ClusterId = clusterId;
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => Dispose());
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => Dispose());
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    /// <summary>The cluster id of the silos, new for every instance.</summary>
    public string ClusterId { get; }

    /// <summary>Gateway ports of the silos on 127.0.0.1, in start order.</summary>
    public List<int> GatewayPorts { get; } = [];

    /// <summary>PIDs of the silo processes, in start order.</summary>
    public IEnumerable<int> Pids => _processes.Select(p => p.Id);

    /// <summary>
    /// Returns the silo host next to this program, or in the repository's <c>silo/bin/&lt;configuration&gt;/net10.0</c>
    /// folder for a program built in the repository (the client in <c>client/bin</c>, or the tests' copy of it).
    /// </summary>
    /// <exception cref="ArgumentException">Neither exists.</exception>
    public static string FindSiloAssembly()
    {
        string beside = Path.Combine(AppContext.BaseDirectory, SiloAssembly);
        if (File.Exists(beside))
        {
            return beside;
        }

        // AppContext.BaseDirectory ends in bin/<configuration>/<framework>/ for a program built in the repository.
        var framework = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string? configuration = framework.Parent?.Name;
        for (var folder = framework.Parent?.Parent?.Parent; folder is not null && configuration is not null; folder = folder.Parent)
        {
            string inRepository = Path.Combine(folder.FullName, "silo", "bin", configuration, framework.Name, SiloAssembly);
            if (File.Exists(inRepository))
            {
                return inRepository;
            }
        }

        throw new ArgumentException(
            $"The silo host {SiloAssembly} was not found next to this program or in silo/bin. Build it with 'dotnet build -c Release', " +
            "or pass its path with --silo-dll.");
    }

    /// <summary>
    /// Starts <paramref name="count"/> silo processes on free loopback ports, the first one the primary, and waits
    /// until every gateway accepts connections.
    /// </summary>
    /// <param name="siloAssembly">Path of <c>Orleans.Optim.Silo.dll</c>.</param>
    /// <param name="count">Number of silos.</param>
    /// <param name="startTimeout">How long to wait for the gateways.</param>
    /// <exception cref="InvalidOperationException">A silo exited or did not open its gateway in time; the others are stopped.</exception>
    public static async Task<SiloProcesses> StartAsync(string siloAssembly, int count, TimeSpan startTimeout)
    {
        var silos = new SiloProcesses("bench-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            int[] ports = FreePorts(2 * count);
            for (int i = 0; i < count; i++)
            {
                silos.Start(siloAssembly, siloPort: ports[2 * i], gatewayPort: ports[2 * i + 1], primaryPort: ports[0]);
            }

            var deadline = DateTime.UtcNow + startTimeout;
            for (int i = 0; i < count; i++)
            {
                await silos.WaitForGatewayAsync(i, deadline);
            }

            return silos;
        }
        catch
        {
            silos.Dispose();
            throw;
        }
    }

    /// <summary>Returns the CPU time each silo process used so far; a process that has exited reports zero.</summary>
    public IEnumerable<TimeSpan> CpuTimes() => _processes.Select(p =>
    {
        try
        {
            p.Refresh();
            return p.HasExited ? TimeSpan.Zero : p.TotalProcessorTime;
        }
        catch (InvalidOperationException)
        {
            return TimeSpan.Zero;
        }
    });

    /// <summary>Kills the silo processes this instance started, by their PIDs, and waits for them to exit.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        foreach (var process in _processes)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }

                process.WaitForExit(10_000);
            }
            catch (Exception e) when (e is InvalidOperationException or Win32Exception)
            {
                // The process exited between the check and the kill.
            }

            process.Dispose();
        }

        _interrupt.Dispose();
        _terminate.Dispose();
    }

    private void OnProcessExit(object? sender, EventArgs e) => Dispose();

    private void Start(string siloAssembly, int siloPort, int gatewayPort, int primaryPort)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(siloAssembly);
        startInfo.ArgumentList.Add($"--Optim:Silo:SiloPort={siloPort}");
        startInfo.ArgumentList.Add($"--Optim:Silo:GatewayPort={gatewayPort}");
        startInfo.ArgumentList.Add($"--Optim:Silo:PrimarySiloPort={primaryPort}");
        startInfo.ArgumentList.Add($"--Optim:Silo:ClusterId={ClusterId}");

        // The silo host logs at Information by default; warnings are enough here and keep the pipes quiet.
        startInfo.Environment["Logging__LogLevel__Default"] = "Warning";
        startInfo.Environment["Logging__LogLevel__Orleans.Optim"] = "Warning";

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Failed to start dotnet {siloAssembly}.");
        var output = new Queue<string>();
        _processes.Add(process);
        _outputs.Add(output);
        GatewayPorts.Add(gatewayPort);
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    private async Task WaitForGatewayAsync(int index, DateTime deadline)
    {
        int port = GatewayPorts[index];
        while (true)
        {
            if (_processes[index].HasExited)
            {
                throw new InvalidOperationException(
                    $"Silo {index} (gateway port {port}) exited with code {_processes[index].ExitCode} while starting. Its last output:{Environment.NewLine}{LastOutput(index)}");
            }

            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
            catch (SocketException)
            {
                throw new InvalidOperationException(
                    $"Silo {index} did not open its gateway port {port} in time. Its last output:{Environment.NewLine}{LastOutput(index)}");
            }
        }
    }

    private string LastOutput(int index)
    {
        lock (_outputs[index])
        {
            return string.Join(Environment.NewLine, _outputs[index]);
        }
    }

    private static void Append(Queue<string> output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.Enqueue(line);
            if (output.Count > MaxOutputLines)
            {
                output.Dequeue();
            }
        }
    }

    private static int[] FreePorts(int count)
    {
        // Holding every listener open until all ports are chosen keeps the same port from being returned twice.
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            listeners.ForEach(l => l.Start());
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            listeners.ForEach(l => l.Stop());
        }
    }
}
