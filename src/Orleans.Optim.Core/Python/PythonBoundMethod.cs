namespace Orleans.Optim.Python;

/// <summary>
/// A Python bound method stored as a value in a state dict, named by the class of its instance and the function.
/// Only the methods in <see cref="Known"/> exist: torch 1.13's <c>OneCycleLR</c> stores its anneal function as
/// <c>anneal_func</c>, a bound method of the scheduler itself, and its <c>state_dict()</c> returns it as is.
/// </summary>
/// <remarks>
/// The instance that the method is bound to is not kept. Torch's <c>torch.save</c> pickles the whole
/// <c>OneCycleLR</c> object with its optimizer for it, and the <c>.pt</c> reader drops that object. The writer
/// pickles <c>getattr(OneCycleLR.__new__(OneCycleLR), name)</c>, which <c>torch.load</c> turns into a bound method
/// of an empty <c>OneCycleLR</c>. Both anneal functions ignore their instance, so that method computes the same values.
/// </remarks>
public sealed class PythonBoundMethod
{
    private PythonBoundMethod(string module, string className, string methodName)
    {
        Module = module;
        ClassName = className;
        MethodName = methodName;
    }

    /// <summary><c>OneCycleLR._annealing_cos</c>, the anneal function of <c>anneal_strategy='cos'</c>.</summary>
    public static PythonBoundMethod OneCycleAnnealingCos { get; } = new("torch.optim.lr_scheduler", "OneCycleLR", "_annealing_cos");

    /// <summary><c>OneCycleLR._annealing_linear</c>, the anneal function of <c>anneal_strategy='linear'</c>.</summary>
    public static PythonBoundMethod OneCycleAnnealingLinear { get; } = new("torch.optim.lr_scheduler", "OneCycleLR", "_annealing_linear");

    /// <summary>Every bound method that a state dict may contain.</summary>
    public static IReadOnlyList<PythonBoundMethod> Known { get; } = [OneCycleAnnealingCos, OneCycleAnnealingLinear];

    /// <summary>Module of the instance's class, such as <c>torch.optim.lr_scheduler</c>.</summary>
    public string Module { get; }

    /// <summary>Name of the instance's class, such as <c>OneCycleLR</c>.</summary>
    public string ClassName { get; }

    /// <summary>Name of the function, such as <c>_annealing_cos</c>.</summary>
    public string MethodName { get; }

    /// <summary>Finds the known bound method with these names.</summary>
    public static bool TryGet(string module, string className, string methodName, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PythonBoundMethod? method)
    {
        method = Known.FirstOrDefault(m => m.Module == module && m.ClassName == className && m.MethodName == methodName);
        return method is not null;
    }

    /// <summary>Returns the method roughly as Python's <c>repr</c> shows it, without the instance.</summary>
    public override string ToString() => $"<bound method {ClassName}.{MethodName} of {Module}.{ClassName}>";
}
