namespace Orleans.Optim.Schedulers;

/// <summary>
/// A scheduler's constructor argument is missing, unknown, of the wrong Python type or fails torch's checks, or the
/// optimizer's param groups lack a value the scheduler needs. Nothing was changed when this is thrown.
/// </summary>
/// <remarks><see cref="ArgumentException.ParamName"/> is torch's name of the argument, such as <c>step_size</c>.</remarks>
public sealed class InvalidSchedulerArgumentException : ArgumentException
{
    /// <summary>Creates the exception for the argument <paramref name="argumentName"/>.</summary>
    public InvalidSchedulerArgumentException(string message, string argumentName)
        : base(message, argumentName)
    {
    }

    /// <summary>Creates the exception for the argument <paramref name="argumentName"/> with the error that caused it.</summary>
    public InvalidSchedulerArgumentException(string message, string argumentName, Exception innerException)
        : base(message, argumentName, innerException)
    {
    }

    /// <summary>Message without the appended argument name.</summary>
    public string Reason => base.Message.Replace($" (Parameter '{ParamName}')", string.Empty, StringComparison.Ordinal);
}
