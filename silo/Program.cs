using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Orleans.Optim.Hosting;

// One Orleans.Optim silo. Settings come from appsettings.json, environment variables (Optim__Silo__SiloPort=11112)
// and the command line (--Optim:Silo:SiloPort=11112), later sources winning.
// The content root is the program's folder, so appsettings.json is found whatever the working directory is.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
SiloSettings settings;
try
{
    CheckClustering(builder.Configuration);
    settings = builder.Configuration.GetSection(SiloSettings.SectionName).Get<SiloSettings>() ?? new SiloSettings();
    settings.Validate();
}
catch (Exception e) when (e is ArgumentException or InvalidOperationException)
{
    // A value that does not parse (SiloPort=abc) or fails validation: one line, no stack trace.
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

builder.UseOrleans(silo => silo.ConfigureOptimizerSilo(settings));
using var host = builder.Build();
try
{
    await host.StartAsync();
}
catch (Exception e) when (e is not OutOfMemoryException)
{
    // The log above has the details; this line names what failed and what to check.
    Console.Error.WriteLine($"error: {SiloStartFailure.Describe(settings, e)}");
    return 1;
}

await host.WaitForShutdownAsync();
return 0;

// The configuration binder's own message for an enum names the .NET type but not the values it accepts.
static void CheckClustering(IConfiguration configuration)
{
    string key = $"{SiloSettings.SectionName}:{nameof(SiloSettings.Clustering)}";
    string? value = configuration[key];
    if (!string.IsNullOrEmpty(value) && !(Enum.TryParse(value, ignoreCase: true, out SiloClustering clustering) && Enum.IsDefined(clustering)))
    {
        throw new ArgumentException($"Invalid {key} '{value}': expected {string.Join(" or ", Enum.GetNames<SiloClustering>())}.");
    }
}
