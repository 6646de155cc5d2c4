using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Dashboard;
using Orleans.Optim.Hosting;
using Orleans.Optim.Security;

// One Orleans.Optim silo. Settings come from appsettings.json, environment variables (Optim__Silo__SiloPort=11112)
// and the command line (--Optim:Silo:SiloPort=11112), later sources winning.
// The content root is the program's folder, so appsettings.json is found whatever the working directory is.
IHostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
SiloSettings settings;
try
{
    CheckClustering(builder.Configuration);
    settings = builder.Configuration.GetSection(SiloSettings.SectionName).Get<SiloSettings>() ?? new SiloSettings();
    settings.Validate();
    if (settings.DashboardPort is { } dashboardPort)
    {
        // The dashboard is an ASP.NET Core app, so the silo runs in a web host, which reads the same sources.
        var web = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        web.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, dashboardPort));
        builder = web;
    }

    // Reads the TLS certificate files, so an unusable certificate fails here too.
    builder.UseOrleans(silo =>
    {
        silo.ConfigureOptimizerSilo(settings);
        if (settings.DashboardPort is not null)
        {
            silo.AddDashboard();
        }
    });
}
catch (Exception e) when (e is ArgumentException or InvalidOperationException)
{
    // A value that does not parse (SiloPort=abc), fails validation or names an unusable certificate: one line, no
    // stack trace, and never the certificate password.
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

using var host = Build(builder);
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

var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Orleans.Optim.Silo");
SiloLog.Started(logger, settings, host.Services.GetService<ClusterCertificate>());
await host.WaitForShutdownAsync();
return 0;

static IHost Build(IHostApplicationBuilder builder)
{
    if (builder is WebApplicationBuilder web)
    {
        var app = web.Build();
        app.MapOrleansDashboard();
        return app;
    }

    return ((HostApplicationBuilder)builder).Build();
}

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
