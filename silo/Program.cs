using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Orleans.Optim.Hosting;

// One Orleans.Optim silo. Settings come from appsettings.json, environment variables (Optim__Silo__SiloPort=11112)
// and the command line (--Optim:Silo:SiloPort=11112), later sources winning.
var builder = Host.CreateApplicationBuilder(args);
var settings = builder.Configuration.GetSection(SiloSettings.SectionName).Get<SiloSettings>() ?? new SiloSettings();
try
{
    settings.Validate();
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

builder.UseOrleans(silo => silo.ConfigureOptimizerSilo(settings));
using var host = builder.Build();
await host.RunAsync();
return 0;
