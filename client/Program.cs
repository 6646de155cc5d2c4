using System.CommandLine;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Commands;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Wire;

var root = new RootCommand("Orleans.Optim: a PyTorch-compatible optimizer held by an Orleans cluster.")
{
    TrainCommand.Create(),
    ConformanceCommand.Create(),
    InspectCommand.Create(),
};

try
{
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or InvalidDataException
    or PtFormatException or StateDictException or InvalidHyperparameterException or OptimizerFaultException or NotSupportedException)
{
    // Expected failures (bad options, unreadable files, rejected state) print one clear line instead of a stack trace.
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
