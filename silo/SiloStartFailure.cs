using Orleans.Optim.Hosting;

/// <summary>Turns an exception from a silo's startup into a one-line error message.</summary>
internal static class SiloStartFailure
{
    /// <summary>Describes the failure with the silo's clustering and ports, the cause, and what to check.</summary>
    public static string Describe(SiloSettings settings, Exception exception)
    {
        string hint = settings.Clustering == SiloClustering.AzureStorage
            ? $"Check that the storage account in {SiloSettings.SectionName}:AzureStorageConnectionString accepts connections " +
              "(for a local Azurite: scripts/azurite.sh start) and that the silo and gateway ports are free."
            : "Check that the silo and gateway ports are free and that the primary silo (PrimarySiloPort) runs.";

        return $"The silo failed to start ({settings.Clustering} clustering, address {settings.ListenAddress}, silo port {settings.SiloPort}, " +
               $"gateway port {settings.GatewayPort}): {FirstLine(Cause(exception).Message)} {hint}";
    }

    /// <summary>Skips the wrappers that only repeat their inner exceptions, such as the Azure SDK's retry summary.</summary>
    private static Exception Cause(Exception exception)
    {
        var cause = exception;
        while (cause is AggregateException or System.Reflection.TargetInvocationException && cause.InnerException is not null)
        {
            cause = cause.InnerException;
        }

        return cause;
    }

    private static string FirstLine(string text)
    {
        int end = text.IndexOf('\n');
        string line = (end < 0 ? text : text[..end]).Trim();
        return line.EndsWith('.') ? line : line + ".";
    }
}
