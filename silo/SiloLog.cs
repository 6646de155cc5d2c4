using Microsoft.Extensions.Logging;
using Orleans.Optim.Hosting;
using Orleans.Optim.Security;

/// <summary>Log lines of the silo host.</summary>
internal static partial class SiloLog
{
    /// <summary>Logs where a started silo listens, whether its connections use TLS and where its dashboard is.</summary>
    public static void Started(ILogger logger, SiloSettings settings, ClusterCertificate? certificate)
    {
        string listening = settings.ListenOnAnyAddress
            ? $"every address of the host, advertising {settings.ListenAddress}"
            : settings.ListenAddress;
        string tls = certificate is null
            ? "TLS off, so silo and client traffic is not encrypted"
            : $"mutual TLS with the certificate '{certificate.Certificate.Subject}' (thumbprint {certificate.Certificate.Thumbprint})" +
              (certificate.CaCertificate is { } ca ? $", also accepting certificates issued by '{ca.Subject}'" : string.Empty);
        string dashboard = settings.DashboardPort is { } port ? $"Orleans Dashboard on http://127.0.0.1:{port}/" : "Orleans Dashboard off";
        LogStarted(logger, settings.Clustering, settings.ClusterId, settings.SiloPort, settings.GatewayPort, listening, tls, dashboard);
    }

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Silo started: {Clustering} clustering, cluster id {ClusterId}, silo port {SiloPort} and gateway port {GatewayPort} on {Listening}; {Tls}; {Dashboard}.")]
    private static partial void LogStarted(
        ILogger logger, SiloClustering clustering, string clusterId, int siloPort, int gatewayPort, string listening, string tls, string dashboard);
}
