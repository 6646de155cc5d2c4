namespace Orleans.Optim.Algorithms;

/// <summary>
/// A param group's hyperparameter is missing, has the wrong Python type or fails torch's constructor checks.
/// </summary>
/// <remarks><see cref="ArgumentException.ParamName"/> is the path of the value, such as <c>param_groups[1]['lr']</c>.</remarks>
public sealed class InvalidHyperparameterException : ArgumentException
{
    /// <summary>Creates the exception for the value at <paramref name="path"/>.</summary>
    public InvalidHyperparameterException(string message, string path)
        : base(message, path)
    {
    }

    /// <summary>Message without the appended parameter name.</summary>
    public string Reason => base.Message.Replace($" (Parameter '{ParamName}')", string.Empty, StringComparison.Ordinal);
}
