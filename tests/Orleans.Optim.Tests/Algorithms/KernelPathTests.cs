using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;

namespace Orleans.Optim.Tests.Algorithms;

/// <summary>The vectorized, 512-bit, chunked and plain kernels give identical bits, including on awkward values.</summary>
public sealed class KernelPathTests
{
    // Every path other than Plain.
    private static readonly KernelPath[] VectorPaths = Enum.GetValues<KernelPath>().Where(path => path != KernelPath.Plain).ToArray();

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
        // 8 floats per 256-bit vector: 1000 elements use the vector loop 125 times, 1003 leave a tail of 3. With
        // 16 floats per 512-bit vector, 1000 leave one 256-bit vector, 1003 one vector and a tail of 3, and 165 a
        // tail of 5. Eight steps reach RAdam's rectified branch, which starts at step 6 with betas[1]=0.999.
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
        var vectorized = VectorPaths.Select(path => new LocalOptimizer(spec, initial.Select(v => (float[])v.Clone()).ToList(), path)).ToList();

        for (int step = 0; step < 8; step++)
        {
            var gradients = initial.Select(v => (float[]?)RandomValues(random, v.Length, special: step % 2 == 1)).ToList();
            plain.Step(gradients);
            foreach (var optimizer in vectorized)
            {
                optimizer.Step(gradients);
            }
        }

        foreach (var optimizer in vectorized)
        {
            for (int id = 0; id < shapes.Length; id++)
            {
                Assert.Null(StateDictComparison.ArrayDifference(plain.Parameter(id), optimizer.Parameter(id)));
            }

            Assert.Null(StateDictComparison.FirstDifference(plain.StateDict(), optimizer.StateDict()));
        }
    }

    public static TheoryData<string, string> ChunkedConfigurations() => new()
    {
        { "SGD", "lr=0.1" },
        { "SGD", "lr=0.1,momentum=0.9,dampening=0.3,weight_decay=0.01,maximize=True" },
        { "SGD", "lr=0.05,momentum=0.8,nesterov=True,weight_decay=0.001" },
        { "Adam", "lr=0.001" },
        { "Adam", "lr=0.01,amsgrad=True,weight_decay=0.1,maximize=True" },
        { "AdamW", "lr=0.5,amsgrad=True,weight_decay=0.3,maximize=True" },
    };

    [Theory]
    [MemberData(nameof(ChunkedConfigurations))]
    public void ChunkedEqualsPlainBits(string algorithmName, string options)
    {
        // Chunks start at multiples of 64 elements. Over 3 threads, 1003 elements split into 384 + 384 + 235, and
        // the last chunk ends with a 512-bit loop, one 256-bit vector and a tail of 3. 4099 elements split into
        // 1408 + 1408 + 1283. 130 elements make two chunks of at least 64, 128 + 2. 100 elements are fewer than two
        // chunks and stay on the calling thread.
        var algorithm = OptimizerAlgorithms.Get(algorithmName);
        var parsed = ParseGroup(algorithm, options);
        var parallelism = new KernelParallelism(maxThreads: 3, minChunkElements: 64);
        var random = new Random(12);
        foreach (int length in new[] { 1003, 4099, 130, 100 })
        {
            float[] initial = RandomValues(random, length, special: true);
            var plainParam = (float[])initial.Clone();
            var plainState = algorithm.CreateState(parsed, length);
            var chunked = VectorPaths.Append(KernelPath.Plain)
                .Select(path => (Path: path, Param: (float[])initial.Clone(), State: algorithm.CreateState(parsed, length)))
                .ToList();

            for (int step = 0; step < 4; step++)
            {
                float[] grad = RandomValues(random, length, special: step % 2 == 1);
                algorithm.Step(parsed, plainState, plainParam, grad, KernelPath.Plain);
                foreach (var (path, param, state) in chunked)
                {
                    algorithm.Step(parsed, state, param, grad, path, parallelism);
                }
            }

            foreach (var (path, param, state) in chunked)
            {
                Assert.True(BitsEqual(plainParam, param), $"{path} chunked, {length} elements: the parameter differs from the plain path's.");
                foreach (var entry in plainState.Entries)
                {
                    var other = state[entry.Name];
                    Assert.Equal(entry.Number, other.Number);
                    Assert.True(
                        entry.Values is null ? other.Values is null : other.Values is not null && BitsEqual(entry.Values, other.Values),
                        $"{path} chunked, {length} elements: state entry '{entry.Name}' differs from the plain path's.");
                }
            }
        }
    }

    [Fact]
    public void ChunkCountFollowsMinimumChunk()
    {
        var parallelism = new KernelParallelism(maxThreads: 4, minChunkElements: 1000);

        Assert.Equal(1, parallelism.ChunkCount(0));
        Assert.Equal(1, parallelism.ChunkCount(1999));
        Assert.Equal(2, parallelism.ChunkCount(2000));
        Assert.Equal(4, parallelism.ChunkCount(1_000_000));
        Assert.Equal(1, KernelParallelism.None.ChunkCount(1_000_000));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KernelParallelism(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KernelParallelism(2, minChunkElements: 0));
    }

    [Theory]
    [InlineData("Adam", "lr=0.001")]
    [InlineData("SGD", "lr=0.1,momentum=0.9")]
    public void ShortGradientIsRejected(string algorithmName, string options)
    {
        var algorithm = OptimizerAlgorithms.Get(algorithmName);
        var parsed = ParseGroup(algorithm, options);
        var state = algorithm.CreateState(parsed, 100);

        foreach (var path in Enum.GetValues<KernelPath>())
        {
            var error = Assert.Throws<ArgumentException>(() => algorithm.Step(parsed, state, new float[100], new float[99], path));
            Assert.Contains("The gradient has 99 elements, but the slice has 100.", error.Message);
        }
    }

    [Fact]
    public void SgdFirstMomentumStepFillsBuffer()
    {
        // The first momentum step fills an uninitialized buffer, so every element must equal the gradient.
        var sgd = new Sgd();
        var options = ParseGroup(sgd, "lr=0.1,momentum=0.9");
        var random = new Random(13);
        float[] grad = RandomValues(random, 300_007, special: false);

        foreach (var path in Enum.GetValues<KernelPath>())
        {
            var state = sgd.CreateState(options, grad.Length);
            sgd.Step(options, state, new float[grad.Length], grad, path, new KernelParallelism(maxThreads: 2, minChunkElements: 64));

            Assert.True(BitsEqual(grad, state.Tensor("momentum_buffer")), $"{path}: the momentum buffer differs from the gradient.");
        }
    }

    // Parses the algorithm's defaults with the given "key=value" pairs in their place.
    private static AlgorithmOptions ParseGroup(OptimizerAlgorithm algorithm, string options)
    {
        var group = new Dictionary<string, object?>(algorithm.Defaults);
        foreach (var (key, value) in ParseOptions(options))
        {
            group[key] = value;
        }

        return algorithm.ParseOptions(group, 0);
    }

    private static bool BitsEqual(float[] expected, float[] actual) =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(expected.AsSpan())
            .SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(actual.AsSpan()));

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
