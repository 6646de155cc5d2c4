using System.CommandLine;
using System.CommandLine.Parsing;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Commands;
using Orleans.Optim.Cli.Training;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Wire;

var root = new RootCommand("Orleans.Optim: a PyTorch-compatible optimizer held by an Orleans cluster.")
{
    TrainCommand.Create(),
    ConformanceCommand.Create(),
    InspectCommand.Create(),
    ExportCommand.CreateExport(),
    ExportCommand.CreateList(),
    BenchCommand.Create(),
};

var parseResult = root.Parse(args);
if (parseResult.Errors.Count > 0 && !args.Any(a => a is "-h" or "--help" or "-?"))
{
    // A misspelt command also yields "Required command was not provided", which only repeats the other error.
    var errors = parseResult.Errors.Count > 1
        ? parseResult.Errors.Where(e => e.Message != "Required command was not provided.").ToList()
        : parseResult.Errors.ToList();
    foreach (var parseError in errors)
    {
        Console.Error.WriteLine($"error: {parseError.Message}");
    }

    Console.Error.WriteLine(HelpHint(parseResult));
    return 1;
}

try
{
    return await parseResult.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or InvalidDataException or CommandException
    or PtFormatException or StateDictException or OptimizerFaultException or NotSupportedException or TrainingInterruptedException
    or TimeoutException or OrleansException)
{
    // Expected failures (bad options, unreadable files, rejected state, a lost silo) print one clear line, not a stack trace.
    Console.Error.WriteLine($"error: {UserMessage(e)}");
    return 1;
}

static string UserMessage(Exception e) => e switch
{
    InvalidHyperparameterException hyperparameter => hyperparameter.Reason,

    // ArgumentException appends " (Parameter 'x')", which names a .NET parameter the user never saw.
    ArgumentException { ParamName: { } name } argument => argument.Message.Replace($" (Parameter '{name}')", string.Empty, StringComparison.Ordinal),
    _ => e.Message,
};

// Names the command that was recognized, so that a misspelt command points to the list of commands.
static string HelpHint(ParseResult parseResult)
{
    var names = new List<string>();
    for (var result = parseResult.CommandResult; result.Parent is CommandResult parent; result = parent)
    {
        names.Insert(0, result.Command.Name);
    }

    return names.Count == 0
        ? "Run 'client --help' for the commands."
        : $"Run 'client {string.Join(' ', names)} --help' for the options.";
}
