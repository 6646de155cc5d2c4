using System.Security.Cryptography.X509Certificates;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Security;

/// <summary>
/// Two silo processes with Localhost clustering and mutual TLS on free ports of 127.0.0.1, sharing one self-signed
/// certificate that the fixture creates in a temporary folder. The password reaches the silos through the
/// environment variable <c>Optim__Silo__Tls__CertificatePassword</c>, never the command line.
/// </summary>
public sealed class TlsClusterFixture : IDisposable
{
    /// <summary>Password of <see cref="CertificatePath"/>.</summary>
    public const string Password = "cluster-pfx-password";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    private readonly List<SiloProcess> _silos = [];

    /// <summary>Creates the certificate and starts the silos, the second joining the first.</summary>
    public TlsClusterFixture()
    {
        Folder = Directory.CreateTempSubdirectory("orleans-optim-tls-").FullName;
        Certificate = TestCertificates.Create("orleans-optim-tls-test");
        CertificatePath = TestCertificates.WritePfx(Certificate, Path.Combine(Folder, "cluster.pfx"), Password);

        int[] ports = LoopbackPorts.Free(4);
        SiloPorts = [ports[0], ports[1]];
        GatewayPorts = [ports[2], ports[3]];
        try
        {
            for (int i = 0; i < 2; i++)
            {
                var silo = StartSilo(SiloPorts[i], GatewayPorts[i], CertificatePath);
                _silos.Add(silo);
                if (!silo.WaitForOutput("Silo started:", StartTimeout))
                {
                    throw new TimeoutException($"Silo {i} did not start within {StartTimeout.TotalSeconds:0} s:\n{silo.Output}");
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Folder of the certificate files and of the clients' working directories.</summary>
    public string Folder { get; }

    /// <summary>The cluster certificate with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>PFX file of <see cref="Certificate"/>, protected by <see cref="Password"/>.</summary>
    public string CertificatePath { get; }

    /// <summary>Cluster id of the silos.</summary>
    public string ClusterId { get; } = "tls-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Silo-to-silo ports on 127.0.0.1.</summary>
    public int[] SiloPorts { get; }

    /// <summary>Gateway ports on 127.0.0.1.</summary>
    public int[] GatewayPorts { get; }

    /// <summary>The silo processes, the primary first.</summary>
    public IReadOnlyList<SiloProcess> Silos => _silos;

    /// <summary>
    /// Starts a silo of this cluster that joins the primary silo with the given certificate file, protected by
    /// <see cref="Password"/>; the caller disposes it.
    /// </summary>
    public SiloProcess StartSilo(int siloPort, int gatewayPort, string certificatePath) =>
        SiloProcess.Start(
            new Dictionary<string, string>
            {
                ["SiloPort"] = $"{siloPort}",
                ["GatewayPort"] = $"{gatewayPort}",
                ["PrimarySiloPort"] = $"{SiloPorts[0]}",
                ["ClusterId"] = ClusterId,
                ["Tls:CertificatePath"] = certificatePath,
            },
            new Dictionary<string, string> { ["Optim__Silo__Tls__CertificatePassword"] = Password });

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var silo in _silos)
        {
            silo.Dispose();
        }

        Certificate.Dispose();
        Directory.Delete(Folder, recursive: true);
    }
}
