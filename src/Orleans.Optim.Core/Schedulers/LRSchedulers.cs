using Orleans.Optim.Python;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Creates schedulers by torch's class name and arguments, as a user writes <c>StepLR(optimizer, step_size=30, gamma=0.1)</c>.
/// </summary>
/// <remarks>
/// Arguments are Python values (see <see cref="PythonValues"/>): <see cref="long"/> or <see cref="int"/> for an
/// int, <see cref="double"/> for a float, <c>List&lt;object?&gt;</c> or <c>object?[]</c> for a list or tuple, and
/// <see cref="LRScheduler"/> instances in SequentialLR's <c>schedulers</c>. They bind to torch 1.13's signatures as
/// Python binds them, with Python's messages for a missing, unknown or repeated argument, and torch's defaults keep
/// torch's Python types (CosineAnnealingLR's <c>eta_min</c> defaults to the int 0).
/// </remarks>
public static class LRSchedulers
{
    private static readonly object Required = new();

    private static readonly Dictionary<string, Signature> Signatures = new Signature[]
    {
        new("StepLR", [("step_size", Required), ("gamma", 0.1)], (groups, arguments) => new StepLR(groups, arguments)),
        new("MultiStepLR", [("milestones", Required), ("gamma", 0.1)], (groups, arguments) => new MultiStepLR(groups, arguments)),
        new("ExponentialLR", [("gamma", Required)], (groups, arguments) => new ExponentialLR(groups, arguments)),
        new("CosineAnnealingLR", [("T_max", Required), ("eta_min", 0L)], (groups, arguments) => new CosineAnnealingLR(groups, arguments)),
        new(
            "LinearLR",
            [("start_factor", 1.0 / 3), ("end_factor", 1.0), ("total_iters", 5L)],
            (groups, arguments) => new LinearLR(groups, arguments)),
        new(
            "OneCycleLR",
            [
                ("max_lr", Required), ("total_steps", null), ("epochs", null), ("steps_per_epoch", null), ("pct_start", 0.3),
                ("anneal_strategy", "cos"), ("cycle_momentum", true), ("base_momentum", 0.85), ("max_momentum", 0.95),
                ("div_factor", 25.0), ("final_div_factor", 1e4), ("three_phase", false),
            ],
            (groups, arguments) => new OneCycleLR(groups, arguments)),
        new("SequentialLR", [("schedulers", Required), ("milestones", Required)], (groups, arguments) => new SequentialLR(groups, arguments)),
    }.ToDictionary(signature => signature.Name, StringComparer.Ordinal);

    /// <summary>Torch class names of the schedulers this library implements.</summary>
    public static IReadOnlyCollection<string> Names => Signatures.Keys;

    /// <summary>Creates the scheduler <paramref name="name"/> from keyword arguments, as <c>Name(optimizer, **keywordArguments)</c>.</summary>
    /// <exception cref="NotSupportedException">No scheduler of that name is implemented.</exception>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is missing, unknown, repeated or invalid. Nothing was changed.</exception>
    public static LRScheduler Create(string name, OptimizerParamGroups optimizer, IEnumerable<KeyValuePair<string, object?>> keywordArguments) =>
        Create(name, optimizer, [], keywordArguments);

    /// <summary>
    /// Creates the scheduler <paramref name="name"/> as <c>Name(optimizer, *positionalArguments, **keywordArguments)</c>,
    /// where the positional arguments follow the optimizer.
    /// </summary>
    /// <exception cref="NotSupportedException">No scheduler of that name is implemented.</exception>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is missing, unknown, repeated or invalid. Nothing was changed.</exception>
    public static LRScheduler Create(
        string name,
        OptimizerParamGroups optimizer,
        IReadOnlyList<object?> positionalArguments,
        IEnumerable<KeyValuePair<string, object?>> keywordArguments)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(positionalArguments);
        ArgumentNullException.ThrowIfNull(keywordArguments);
        if (!Signatures.TryGetValue(name, out var signature))
        {
            throw new NotSupportedException(
                $"Scheduler '{name}' is not supported. Supported schedulers: {string.Join(", ", Signatures.Keys)}. Names are torch class names and case-sensitive.");
        }

        return signature.Create(optimizer, signature.Bind(positionalArguments, keywordArguments));
    }

    /// <summary>A torch scheduler's <c>__init__</c> parameters after <c>optimizer</c>, ending in <c>last_epoch</c> and <c>verbose</c>.</summary>
    private sealed class Signature
    {
        private readonly (string Name, object? Default)[] _parameters;
        private readonly Func<OptimizerParamGroups, SchedulerArguments, LRScheduler> _create;

        public Signature(string name, (string Name, object? Default)[] parameters, Func<OptimizerParamGroups, SchedulerArguments, LRScheduler> create)
        {
            Name = name;
            _parameters = [.. parameters, ("last_epoch", -1L), ("verbose", false)];
            _create = create;
        }

        public string Name { get; }

        public LRScheduler Create(OptimizerParamGroups optimizer, SchedulerArguments arguments) => _create(optimizer, arguments);

        /// <summary>Binds arguments as Python binds a call, with Python's messages for its errors.</summary>
        public SchedulerArguments Bind(IReadOnlyList<object?> positional, IEnumerable<KeyValuePair<string, object?>> keywords)
        {
            string function = $"{Name}.__init__()";
            string valid = $"Valid arguments after the optimizer are {string.Join(", ", _parameters.Select(p => p.Name))}.";
            if (positional.Count > _parameters.Length)
            {
                // Python counts self and optimizer among the positional arguments.
                int required = _parameters.Count(p => ReferenceEquals(p.Default, Required)) + 2;
                throw new InvalidSchedulerArgumentException(
                    $"{function} takes from {required} to {_parameters.Length + 2} positional arguments but {positional.Count + 2} were given. {valid}",
                    _parameters[^1].Name);
            }

            var values = new Dictionary<string, object?>(StringComparer.Ordinal);
            for (int i = 0; i < positional.Count; i++)
            {
                values[_parameters[i].Name] = positional[i];
            }

            foreach (var (key, value) in keywords)
            {
                if (!_parameters.Any(p => p.Name == key))
                {
                    throw new InvalidSchedulerArgumentException($"{function} got an unexpected keyword argument '{key}'. {valid}", key);
                }

                if (!values.TryAdd(key, value))
                {
                    throw new InvalidSchedulerArgumentException($"{function} got multiple values for argument '{key}'. Pass it once.", key);
                }
            }

            var missing = _parameters.Where(p => ReferenceEquals(p.Default, Required) && !values.ContainsKey(p.Name)).Select(p => p.Name).ToList();
            if (missing.Count > 0)
            {
                string names = string.Join(" and ", missing.Select(m => $"'{m}'"));
                throw new InvalidSchedulerArgumentException(
                    $"{function} missing {missing.Count} required positional argument{(missing.Count > 1 ? "s" : string.Empty)}: {names}. {valid}",
                    missing[0]);
            }

            foreach (var (parameter, defaultValue) in _parameters)
            {
                values.TryAdd(parameter, defaultValue);
            }

            return new SchedulerArguments(Name, values);
        }
    }
}
