using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;

namespace Orleans.Optim.Tests.Algorithms;

/// <summary>The vectorized and plain kernels give identical bits, including on awkward values.</summary>
public sealed class KernelPathTests
{
    public static TheoryData<string, string> Configurations() => new()
    {
        { "SGD", "lr=0.1" },
        { "SGD", "lr=0.1,momentum=0.9" },
        { "SGD", "lr=0.1,momentum=0.9,dampening=0.3,weight_decay=0.01,maximize=True" },
        { "SGD", "lr=0.05,momentum=0.8,nesterov=True,weight_decay=0.001" },
        { "Adam", "lr=0.001" },
        { "Adam", "lr=0.01,amsgrad=True,weight_decay=0.1" },
        { "Adam", "lr=0.01,maximize=True,eps=1e-30" },
        { "AdamW", "lr=0.001" },
        { "AdamW", "lr=0.5,amsgrad=True,weight_decay=0.3,maximize=True" },
        { "Adagrad", "lr=0.01" },
        { "Adagrad", "lr=0.1,lr_decay=0.05,initial_accumulator_value=0.1,weight_decay=0.01,maximize=True" },
        { "Adagrad", "lr=0.1,lr_decay=0.3,eps=0.0,foreach=True" },
        { "RMSprop", "lr=0.01" },
        { "RMSprop", "lr=0.01,centered=True,weight_decay=0.01" },
        { "RMSprop", "lr=0.01,momentum=0.9,maximize=True" },
        { "RMSprop", "lr=0.01,momentum=0.9,centered=True,alpha=0.5,eps=1e-30" },
        { "Adadelta", "lr=1.0" },
        { "Adadelta", "lr=0.5,rho=0.0,weight_decay=0.1,maximize=True" },
        { "Adadelta", "rho=1.0,eps=1e-30" },
        { "Adamax", "lr=0.002" },
        { "Adamax", "lr=0.01,weight_decay=0.1,maximize=True,eps=0.0" },
        { "NAdam", "lr=0.002" },
        { "NAdam", "lr=0.01,betas=(0.5 0.9),weight_decay=0.1,momentum_decay=0.04" },
        { "NAdam", "lr=0.5,eps=1e-30,momentum_decay=0.0" },
        { "RAdam", "lr=0.001" },
        { "RAdam", "lr=0.01,betas=(0.5 0.99),weight_decay=0.1" },
        { "RAdam", "lr=0.5,eps=1e-30" },
        { "ASGD", "lr=0.01,t0=2.0" },
        { "ASGD", "lr=0.05,lambd=0.1,alpha=1,t0=0,weight_decay=0.01,maximize=True" },
        { "ASGD", "lr=1,t0=3.0" },
        { "Rprop", "lr=0.01" },
        { "Rprop", "lr=0.01,etas=(0.4 1.5),step_sizes=(0.004 0.015),maximize=True" },
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void VectorizedEqualsPlainBits(string algorithm, string options)
    {
        // 8 floats per 256-bit vector: 1000 elements use the vector loop 125 times, 1003 leave a tail of 3. Eight
        // steps reach RAdam's rectified branch, which starts at step 6 with betas[1]=0.999.
        long[][] shapes = [[1000], [1003], [7], [33, 5]];
        var random = new Random(11);
        var initial = shapes.Select(s => RandomValues(random, (int)s.Aggregate(1L, (a, b) => a * b), special: true)).ToList();
        var spec = new OptimizerSpec
        {
            Algorithm = algorithm,
            DefaultOptions = ParseOptions(options),
            Groups = [new ParamGroupSpec([], shapes.Select(s => new ParameterSpec(null, s)).ToList())],
        };
        var plain = new LocalOptimizer(spec, initial.Select(v => (float[])v.Clone()).ToList(), KernelPath.Plain);
        var vectorized = new LocalOptimizer(spec, initial.Select(v => (float[])v.Clone()).ToList(), KernelPath.Vectorized);

        for (int step = 0; step < 8; step++)
        {
            var gradients = initial.Select(v => (float[]?)RandomValues(random, v.Length, special: step % 2 == 1)).ToList();
            plain.Step(gradients);
            vectorized.Step(gradients);
        }

        for (int id = 0; id < shapes.Length; id++)
        {
            Assert.Null(StateDictComparison.ArrayDifference(plain.Parameter(id), vectorized.Parameter(id)));
        }

        Assert.Null(StateDictComparison.FirstDifference(plain.StateDict(), vectorized.StateDict()));
    }

    // Reads "key=value" pairs separated by commas. A value is True, False, a tuple "(a b)", an int (no '.' or exponent)
    // or a float, with Python's types.
    private static List<KeyValuePair<string, object?>> ParseOptions(string text) =>
        text.Split(',').Select(pair =>
        {
            string[] parts = pair.Split('=');
            object? value = parts[1] switch
            {
                "True" => true,
                "False" => false,
                ['(', .., ')'] tuple => tuple[1..^1].Split(' ').Select(ParseNumber).ToArray(),
                _ => ParseNumber(parts[1]),
            };
            return new KeyValuePair<string, object?>(parts[0], value);
        }).ToList();

    private static object? ParseNumber(string text) =>
        text.IndexOfAny(['.', 'e', 'E']) >= 0
            ? double.Parse(text, System.Globalization.CultureInfo.InvariantCulture)
            : long.Parse(text, System.Globalization.CultureInfo.InvariantCulture);

    private static float[] RandomValues(Random random, int length, bool special)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (float)(random.NextDouble() * 4 - 2);
        }

        if (special && length > 10)
        {
            // Subnormal, signed zero, tiny and huge magnitudes where rounding differences would show.
            values[1] = 1e-40f;
            values[2] = -0f;
            values[3] = 1e-30f;
            values[4] = 3e30f;
            values[length - 1] = -1e-40f;
        }

        return values;
    }
}
