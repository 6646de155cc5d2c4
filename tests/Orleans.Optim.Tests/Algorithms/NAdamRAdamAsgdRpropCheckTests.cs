using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Algorithms;

/// <summary>
/// NAdam, RAdam, ASGD and Rprop reject the hyperparameters that torch 1.13 rejects, with torch's message, and raise
/// where torch's step raises. Real torch supplies the expected messages and exception types.
/// </summary>
public sealed partial class NAdamRAdamAsgdRpropCheckTests
{
    // Algorithm, constructor keyword arguments in Python syntax, and the path our error names.
    private static readonly (string Algorithm, string Arguments, string Path)[] s_invalidConstructors =
    [
        ("NAdam", "lr=-0.1", "param_groups[0]['lr']"),
        ("NAdam", "eps=-1e-08", "param_groups[0]['eps']"),
        ("NAdam", "betas=(1.0, 0.999)", "param_groups[0]['betas']"),
        ("NAdam", "betas=(0.9, -0.5)", "param_groups[0]['betas']"),
        ("NAdam", "weight_decay=-0.01", "param_groups[0]['weight_decay']"),
        ("NAdam", "momentum_decay=-0.004", "param_groups[0]['momentum_decay']"),
        ("NAdam", "momentum_decay=-0.004, lr=-0.5", "param_groups[0]['lr']"),
        ("RAdam", "lr=-0.001", "param_groups[0]['lr']"),
        ("RAdam", "eps=-1e-08", "param_groups[0]['eps']"),
        ("RAdam", "betas=(-0.1, 0.999)", "param_groups[0]['betas']"),
        ("RAdam", "betas=(0.9, 1.5)", "param_groups[0]['betas']"),
        ("RAdam", "weight_decay=-0.5", "param_groups[0]['weight_decay']"),
        ("RAdam", "weight_decay=-0.5, eps=-1.0", "param_groups[0]['eps']"),
        ("ASGD", "lr=-0.01", "param_groups[0]['lr']"),
        ("ASGD", "weight_decay=-0.1", "param_groups[0]['weight_decay']"),
        ("Rprop", "lr=-0.01", "param_groups[0]['lr']"),
        ("Rprop", "etas=(0.0, 1.2)", "param_groups[0]['etas']"),
        ("Rprop", "etas=(1.0, 1.2)", "param_groups[0]['etas']"),
        ("Rprop", "etas=(0.5, 1.0)", "param_groups[0]['etas']"),
        ("Rprop", "etas=(0.5, 0.9), lr=-1.0", "param_groups[0]['lr']"),
    ];

    // Algorithm, constructor keyword arguments, the Python exception torch's step raises, and at which step.
    private static readonly (string Algorithm, string Arguments, string PythonError, int FailingStep)[] s_failingSteps =
    [
        // 1 + lambd * lr * step is 0.5 at step 1 and 0 at step 2, so lr / math.pow(0.0, alpha) divides by zero.
        ("ASGD", "lr=1.0, lambd=-0.5", "ZeroDivisionError", 2),

        // The base is -0.5 at step 2, and math.pow of a negative base with a fractional alpha is a domain error.
        ("ASGD", "lr=1.0, lambd=-0.75", "ValueError", 2),

        // math.pow(1e300, 2.0) overflows.
        ("ASGD", "lr=1.0, lambd=1e300, alpha=2.0", "OverflowError", 1),

        // mu rounds to 1.0 in float32, so 1 - mu_product is 0.
        ("NAdam", "betas=(0.99999999, 0.999), momentum_decay=10000.0, foreach=True", "ZeroDivisionError", 1),
    ];

    private static readonly Lazy<List<string?>> s_torchMessages = new(ReadTorchMessages);

    private static readonly Lazy<List<string>> s_torchStepErrors = new(ReadTorchStepErrors);

    public static TheoryData<int> InvalidConstructorIndices() => new(Enumerable.Range(0, s_invalidConstructors.Length));

    public static TheoryData<int> FailingStepIndices() => new(Enumerable.Range(0, s_failingSteps.Length));

    [Theory]
    [MemberData(nameof(InvalidConstructorIndices))]
    public void InvalidValueGivesTorchMessage(int index)
    {
        var (algorithm, arguments, path) = s_invalidConstructors[index];
        string? torchMessage = s_torchMessages.Value[index];
        Assert.NotNull(torchMessage);

        var error = Assert.Throws<InvalidHyperparameterException>(() => CreateOptimizer(algorithm, arguments));

        Assert.Equal(path, error.ParamName);
        Assert.StartsWith($"{torchMessage} in {path}; expected ", error.Reason);
    }

    [Theory]
    [MemberData(nameof(FailingStepIndices))]
    public void FailingStepRaisesAsTorch(int index)
    {
        var (algorithm, arguments, pythonError, failingStep) = s_failingSteps[index];
        Assert.Equal($"{pythonError} at step {failingStep}", s_torchStepErrors.Value[index]);
        var optimizer = CreateOptimizer(algorithm, arguments);
        for (int step = 1; step < failingStep; step++)
        {
            optimizer.Step([OnesGradient()]);
        }

        var stateBefore = optimizer.StateDict();
        float[] paramBefore = optimizer.Parameter(0);

        var error = Assert.ThrowsAny<ArithmeticException>(() => optimizer.Step([OnesGradient()]));

        if (pythonError == "ZeroDivisionError")
        {
            Assert.IsType<DivideByZeroException>(error);
        }
        else
        {
            Assert.Contains(pythonError, error.Message);
        }

        Assert.Null(StateDictComparison.ArrayDifference(paramBefore, optimizer.Parameter(0)));
        if (failingStep > 1)
        {
            Assert.Null(StateDictComparison.FirstDifference(stateBefore, optimizer.StateDict()));
        }
    }

    [Fact]
    public void AsgdAcceptsInfiniteT0()
    {
        // t0=float('inf') never starts averaging, so ASGD runs as with a t0 that the steps never pass.
        var infinite = CreateOptimizer("ASGD", "lr=0.1", ("t0", double.PositiveInfinity));
        var finite = CreateOptimizer("ASGD", "lr=0.1, t0=1000000.0");
        var random = new Random(5);
        for (int step = 0; step < 4; step++)
        {
            var gradient = Enumerable.Range(0, 3).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
            infinite.Step([gradient]);
            finite.Step([gradient]);
        }

        Assert.Null(StateDictComparison.ArrayDifference(finite.Parameter(0), infinite.Parameter(0)));
        var state = infinite.StateDict().State[0];
        Assert.Equal(1f, ((Tensors.Tensor)state["mu"]!).AsFloats()[0]);
    }

    [Fact]
    public void AsgdRejectsNaNT0()
    {
        var error = Assert.Throws<InvalidHyperparameterException>(() => CreateOptimizer("ASGD", "lr=0.1", ("t0", double.NaN)));

        Assert.Equal("param_groups[0]['t0']", error.ParamName);
    }

    private static float[] OnesGradient() => [1f, 1f, 1f];

    private static LocalOptimizer CreateOptimizer(string algorithm, string arguments, (string Key, object? Value)? extra = null)
    {
        var options = ParseArguments(arguments);
        if (extra is { } pair)
        {
            options.Add(new(pair.Key, pair.Value));
        }

        var spec = new OptimizerSpec
        {
            Algorithm = algorithm,
            DefaultOptions = options,
            Groups = [new ParamGroupSpec([], [new ParameterSpec(null, [3])])],
        };
        return new LocalOptimizer(spec, [[1f, 1f, 1f]]);
    }

    // Parses Python keyword arguments of floats, bools and tuples of floats, such as "lr=0.1, betas=(0.9, 0.99)".
    private static List<KeyValuePair<string, object?>> ParseArguments(string arguments) =>
        ArgumentPattern().Matches(arguments).Select(match =>
        {
            string text = match.Groups["value"].Value;
            object? value = text switch
            {
                "True" => true,
                "False" => false,
                ['(', .., ')'] => text[1..^1].Split(", ").Select(item => (object?)ParseFloat(item)).ToArray(),
                _ => ParseFloat(text),
            };
            return new KeyValuePair<string, object?>(match.Groups["key"].Value, value);
        }).ToList();

    private static double ParseFloat(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    // Runs every invalid constructor call in torch and returns each ValueError's message, or null without an error.
    private static List<string?> ReadTorchMessages()
    {
        const string script = """
            import json, sys, torch
            messages = []
            for name, arguments in json.loads(sys.argv[1]):
                param = torch.zeros(1, requires_grad=True)
                try:
                    getattr(torch.optim, name)([param], **eval(f"dict({arguments})"))
                    messages.append(None)
                except ValueError as error:
                    messages.append(str(error))
            print(json.dumps(messages))
            """;
        string cases = JsonSerializer.Serialize(s_invalidConstructors.Select(c => new[] { c.Algorithm, c.Arguments }));
        return JsonSerializer.Deserialize<List<string?>>(PythonTorch.Run(script, [cases]))!;
    }

    // Steps a 3-element parameter of ones with gradients of ones in torch and returns "<exception type> at step <n>"
    // for the step that raised, or "no error".
    private static List<string> ReadTorchStepErrors()
    {
        const string script = """
            import json, sys, torch
            results = []
            for name, arguments, steps in json.loads(sys.argv[1]):
                param = torch.ones(3, requires_grad=True)
                optimizer = getattr(torch.optim, name)([param], **eval(f"dict({arguments})"))
                result = "no error"
                for step in range(1, steps + 1):
                    param.grad = torch.ones(3)
                    try:
                        optimizer.step()
                    except Exception as error:
                        result = f"{type(error).__name__} at step {step}"
                        break
                results.append(result)
            print(json.dumps(results))
            """;
        string cases = JsonSerializer.Serialize(s_failingSteps.Select(c => new object[] { c.Algorithm, c.Arguments, c.FailingStep + 1 }));
        return JsonSerializer.Deserialize<List<string>>(PythonTorch.Run(script, [cases]))!;
    }

    [GeneratedRegex(@"(?<key>\w+)=(?<value>\([^)]*\)|[^,]+)")]
    private static partial Regex ArgumentPattern();
}
