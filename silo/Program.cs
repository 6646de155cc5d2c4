using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Orleans.Optim.Hosting;

// One Orleans.Optim silo. Settings come from appsettings.json, environment variables (Optim__Silo__SiloPort=11112)
// and the command line (--Optim:Silo:SiloPort=11112), later sources winning.
// The content root is the program's folder, so appsettings.json is found whatever the working directory is.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
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
