namespace Orleans.Optim.Wire;

/// <summary>What went wrong in an optimizer request, so that a client can react without parsing messages.</summary>
[GenerateSerializer]
public enum OptimizerFault
{
    /// <summary>A request argument is invalid.</summary>
    InvalidArgument,

    /// <summary>A hyperparameter is missing, has the wrong type or fails torch's checks.</summary>
    InvalidHyperparameter,

    /// <summary>A state dict does not fit the optimizer.</summary>
    StateDictMismatch,

    /// <summary>No optimizer with this name exists.</summary>
    NotFound,

    /// <summary>The optimizer exists but its creation has not finished.</summary>
    NotReady,

    /// <summary>An optimizer with this name exists with a different spec.</summary>
    Conflict,

    /// <summary>A gradient push broke the step protocol (rank, step number, duplicate, length).</summary>
    StepRejected,

    /// <summary>A synchronous step did not get every rank's gradient in time.</summary>
    StepTimedOut,

    /// <summary>Shards disagree (for example on the step); the request cannot give a consistent answer.</summary>
    Inconsistent,

    /// <summary>
    /// The optimizer was rolled back to a checkpoint after a failure; <see cref="OptimizerFaultException.ResumeStep"/>
    /// names the step to continue from.
    /// </summary>
    RolledBack,
}

/// <summary>
/// An optimizer request failed. <see cref="Fault"/> tells the kind of failure, and the message names the value and what to do next.
/// A failed request changes nothing unless its message says otherwise.
/// </summary>
[GenerateSerializer]
public sealed class OptimizerFaultException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OptimizerFaultException(OptimizerFault fault, string message)
        : base(message)
    {
        Fault = fault;
    }

    /// <summary>Creates the exception with the error that caused it.</summary>
    public OptimizerFaultException(OptimizerFault fault, string message, Exception innerException)
        : base(message, innerException)
    {
        Fault = fault;
    }

    /// <summary>What went wrong.</summary>
    [Id(0)]
    public OptimizerFault Fault { get; }

    /// <summary>For <see cref="OptimizerFault.InvalidHyperparameter"/>: the path of the value, such as <c>param_groups[0]['lr']</c>.</summary>
    [Id(1)]
    public string? Path { get; init; }

    /// <summary>For <see cref="OptimizerFault.RolledBack"/>: the step the optimizer is at now; the next step is one more.</summary>
    [Id(2)]
    public long? ResumeStep { get; init; }
}
