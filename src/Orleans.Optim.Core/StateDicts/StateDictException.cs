namespace Orleans.Optim.StateDicts;

/// <summary>
/// A state dict does not have torch's structure, or does not match the optimizer it is loaded into.
/// Nothing was changed when this is thrown.
/// </summary>
public sealed class StateDictException : Exception
{
    /// <summary>Creates the exception with a message that names the group, param and key at fault.</summary>
    public StateDictException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    public StateDictException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
