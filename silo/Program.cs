using System.Net;
using System.Text.RegularExpressions;
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
    settings = BindSettings(builder.Configuration);
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

// A misspelt key would otherwise leave its setting at the default without a word.
static SiloSettings BindSettings(IConfiguration configuration)
{
    try
    {
        return configuration.GetSection(SiloSettings.SectionName).Get<SiloSettings>(options => options.ErrorOnUnknownConfiguration = true) ?? new SiloSettings();
    }
    catch (InvalidOperationException e) when (e.Message.Contains(nameof(BinderOptions.ErrorOnUnknownConfiguration), StringComparison.Ordinal))
    {
        // The binder names the unknown keys after a colon, such as "...on the instance of SiloSettings: 'Typo'".
        string unknown = e.Message[(e.Message.LastIndexOf(": ", StringComparison.Ordinal) + 2)..];
        throw new ArgumentException(
            $"Unknown setting(s) under {SiloSettings.SectionName}: {unknown}. Check the spelling against the silo settings table in README.md.", e);
    }
    catch (InvalidOperationException e) when (ConversionFailure().Match(e.Message) is { Success: true } match)
    {
        string expected = match.Groups["type"].Value switch
        {
            "System.Int32" or "System.Int64" => "a whole number",
            "System.Boolean" => "true or false",
            "System.TimeSpan" => "a time span written hh:mm:ss, such as 00:01:00",
            var type => $"a value of type {type}",
        };
        throw new ArgumentException($"Invalid {match.Groups["key"].Value} '{match.Groups["value"].Value}': expected {expected}.", e);
    }
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

// The binder's message for a value of the wrong type, such as SiloPort=abc.
internal static partial class Program
{
    [GeneratedRegex(@"^Failed to convert configuration value '(?<value>.*)' at '(?<key>[^']+)' to type '(?<type>[^']+)'")]
    private static partial Regex ConversionFailure();
}
