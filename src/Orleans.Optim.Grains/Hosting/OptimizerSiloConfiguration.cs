using System.Net;
using Orleans.Configuration;
using Orleans.Hosting;

namespace Orleans.Optim.Hosting;

/// <summary>Configures a silo for Orleans.Optim from <see cref="SiloSettings"/>.</summary>
public static class OptimizerSiloConfiguration
{
    /// <summary>
    /// Configures localhost clustering on 127.0.0.1 (this silo, or joining the primary silo's port), in-memory grain
    /// storage, and the optimizer grains.
    /// </summary>
    /// <remarks>
    /// Localhost clustering keeps all traffic on loopback and does not survive losing the primary silo; it is the
    /// embedded default for one machine.
    /// </remarks>
    public static ISiloBuilder ConfigureOptimizerSilo(this ISiloBuilder silo, SiloSettings settings)
    {
        settings.Validate();
        var primary = settings.PrimarySiloPort is { } port && port != settings.SiloPort
            ? new IPEndPoint(IPAddress.Loopback, port)
            : null;

        silo.UseLocalhostClustering(settings.SiloPort, settings.GatewayPort, primary, settings.ServiceId, settings.ClusterId);
        // A shard call waits up to the step timeout for the other ranks, so silo-to-silo requests must be allowed longer.
        silo.Configure<SiloMessagingOptions>(options => options.ResponseTimeout = settings.Shards.StepTimeout + TimeSpan.FromSeconds(30));
        silo.AddMemoryGrainStorage(OptimizerSiloBuilderExtensions.StorageName);
        silo.AddOptimizerGrains(shards =>
        {
            shards.StepTimeout = settings.Shards.StepTimeout;
            shards.PersistEverySteps = settings.Shards.PersistEverySteps;

            // In-memory storage ends with the silos, so writing to it while they shut down only produces errors.
            shards.PersistOnDeactivation = false;
        },
        checkpoints =>
        {
            checkpoints.Path = settings.Checkpoints.Path;
            checkpoints.KeepLast = settings.Checkpoints.KeepLast;
            checkpoints.RecoveryTimeout = settings.Checkpoints.RecoveryTimeout;
        });
        return silo;
    }
}
