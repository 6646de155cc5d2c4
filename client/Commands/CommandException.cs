namespace Orleans.Optim.Cli.Commands;

/// <summary>A failure the user can fix; the command prints its message as <c>error: ...</c> and exits with 1.</summary>
public sealed class CommandException : Exception
{
    /// <summary>Creates the exception with a message that names what failed and what to do next.</summary>
    public CommandException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the error that caused it.</summary>
    public CommandException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
