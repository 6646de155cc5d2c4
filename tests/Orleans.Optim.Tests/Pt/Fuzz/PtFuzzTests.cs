using System.Diagnostics;
using System.Globalization;
using CsCheck;
using Orleans.Optim.Formats.Pt;
using Xunit.Abstractions;

namespace Orleans.Optim.Tests.Pt.Fuzz;

/// <summary>
/// Mutates valid <c>.pt</c> files and checks that the reader returns a value or raises <see cref="PtFormatException"/>,
/// in bounded time and memory, and replays every file of <c>Pt/Corpus</c>, the inputs that once broke that contract.
/// </summary>
/// <remarks>
/// The run is deterministic: iteration <c>i</c> of seed <c>S</c> always builds the same file. Environment variables
/// change the run: <c>PT_FUZZ_ITERATIONS</c> (default 10,000), <c>PT_FUZZ_SEED</c> (default 20260101) and
/// <c>PT_FUZZ_FIRST</c>, the first iteration (default 0), so that <c>PT_FUZZ_FIRST=i PT_FUZZ_ITERATIONS=1</c> replays one case.
/// </remarks>
public sealed class PtFuzzTests(ITestOutputHelper output)
{
    private const int DefaultIterations = 10_000;
    private const ulong DefaultSeed = 20260101;

    /// <summary>Wall-clock limit of one run. A longer run stops early and prints how far it got.</summary>
    private static readonly TimeSpan RunTimeLimit = TimeSpan.FromMinutes(30);

    /// <summary>Small limits, so that mutated files also reach the code that enforces each limit.</summary>
    private static readonly PtReaderOptions TightOptions = new()
    {
        MaxTensorBytes = 256,
        MaxTotalBytes = 1024,
        MaxPickleBytes = 4096,
        MaxNestingDepth = 6,
        MaxContainerItems = 16,
    };

    private static readonly Gen<Mutation> MutationGen = Gen.Select(
        Gen.Enum<MutationKind>(), Gen.UInt.Uniform, Gen.UInt.Uniform, Gen.UInt.Uniform, (kind, a, b, c) => new Mutation(kind, a, b, c));

    /// <summary>
    /// Index of a seed file. The last seed, whose storage is larger than 1 MiB, takes far longer to mutate and read
    /// than the others, so it gets 1% of the cases to keep the run short.
    /// </summary>
    private static readonly Gen<int> SeedIndexGen = Gen.Frequency(
        (99, Gen.Int[0, PtFuzzSeeds.All.Count - 2]), (1, Gen.Const(PtFuzzSeeds.All.Count - 1)));

    private static readonly Gen<FuzzCase> CaseGen = Gen.Select(
        SeedIndexGen, MutationGen.Array[1, 4], Gen.Int[0, 3], (seed, mutations, options) => new FuzzCase(seed, mutations, options == 0));

    public static TheoryData<string> CorpusFiles =>
        new(Directory.GetFiles(CorpusFolder, "*.pt").Select(path => Path.GetFileName(path)).Order(StringComparer.Ordinal));

    private static string CorpusFolder => Path.Combine(AppContext.BaseDirectory, "Pt", "Corpus");

    [Fact]
    public void MutatedFilesReadOrReject()
    {
        ulong seed = ReadSetting("PT_FUZZ_SEED", DefaultSeed);
        long first = (long)ReadSetting("PT_FUZZ_FIRST", 0);
        long iterations = (long)ReadSetting("PT_FUZZ_ITERATIONS", DefaultIterations);
        output.WriteLine($"Fuzzing the .pt reader with seed {seed}, iterations {first} to {first + iterations - 1}.");

        var counts = new Dictionary<PtReadOutcome, long>();
        var messages = new HashSet<string>(StringComparer.Ordinal);
        double largestBoundShare = 0;
        long largestBoundShareIteration = first;
        var slowest = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        long done = 0;
        for (long i = first; i < first + iterations && clock.Elapsed < RunTimeLimit; i++, done++)
        {
            var fuzzCase = Generate(seed, i);
            byte[] file = fuzzCase.Build();
            var result = PtReadOracle.Read(file, fuzzCase.Options);
            if (result.Outcome == PtReadOutcome.Failed)
            {
                Assert.Fail(Report(seed, i, Minimize(fuzzCase, result)));
            }

            if (iterations <= 10)
            {
                output.WriteLine($"Iteration {i}: {fuzzCase.Describe()}, {file.Length} bytes: {result.Outcome} after allocating {result.AllocatedBytes} bytes. {result.Message}");
            }

            counts[result.Outcome] = counts.GetValueOrDefault(result.Outcome) + 1;
            if (result.Message is not null)
            {
                messages.Add(MessagePattern(result.Message));
            }

            double boundShare = (double)result.AllocatedBytes / PtReadOracle.AllocationBound(file.Length, fuzzCase.Options);
            if (boundShare > largestBoundShare)
            {
                (largestBoundShare, largestBoundShareIteration) = (boundShare, i);
            }

            slowest = result.Elapsed > slowest ? result.Elapsed : slowest;
        }

        output.WriteLine(
            $"Ran {done} iterations in {clock.Elapsed.TotalSeconds:F1} s: " +
            string.Join(", ", Enum.GetValues<PtReadOutcome>().Select(o => $"{o} {counts.GetValueOrDefault(o)}")) +
            $"; {messages.Count} distinct messages; largest allocation {largestBoundShare:P1} of its bound (iteration {largestBoundShareIteration}); slowest read {slowest.TotalMilliseconds:F0} ms.");

        // A mutator that only produced unreadable zips would pass without testing the pickle and tensor code.
        Assert.True(counts.GetValueOrDefault(PtReadOutcome.Accepted) + counts.GetValueOrDefault(PtReadOutcome.NotOptimizerState) >= done / 50,
            "Fewer than 2% of the mutated files read as a value, so the mutations are too destructive to test the reader's later stages.");
        Assert.True(counts.GetValueOrDefault(PtReadOutcome.Rejected) >= done / 4, "Fewer than a quarter of the mutated files were rejected.");
        Assert.True(messages.Count >= Math.Min(done / 20, 60), $"Only {messages.Count} distinct error messages, so the mutations reach few checks.");
    }

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void CorpusFileReadsOrRejects(string fileName)
    {
        byte[] file = File.ReadAllBytes(Path.Combine(CorpusFolder, fileName));

        foreach (var options in new[] { PtReaderOptions.Default, TightOptions })
        {
            var result = PtReadOracle.Read(file, options);

            Assert.True(result.Outcome != PtReadOutcome.Failed, $"{fileName}: {result.Problem}");
        }
    }

    [Fact]
    public void SameIterationBuildsSameFile()
    {
        byte[] first = Generate(DefaultSeed, 17).Build();
        byte[] second = Generate(DefaultSeed, 17).Build();
        byte[] other = Generate(DefaultSeed, 18).Build();

        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
    }

    /// <summary>Returns the case of iteration <paramref name="iteration"/>, which depends only on the seed and the iteration.</summary>
    private static FuzzCase Generate(ulong seed, long iteration) =>
        CaseGen.Generate(new PCG(1, Mix(seed ^ Mix((ulong)iteration))), null!, out _);

    /// <summary>Drops mutations one at a time while the case still fails, so the report shows only what matters.</summary>
    private static (FuzzCase Case, PtReadResult Result) Minimize(FuzzCase fuzzCase, PtReadResult result)
    {
        bool changed = true;
        for (int round = 0; changed && round < 8; round++)
        {
            changed = false;
            for (int m = 0; m < fuzzCase.Mutations.Length && fuzzCase.Mutations.Length > 1; m++)
            {
                var smaller = fuzzCase with { Mutations = [.. fuzzCase.Mutations[..m], .. fuzzCase.Mutations[(m + 1)..]] };
                var smallerResult = PtReadOracle.Read(smaller.Build(), smaller.Options);
                if (smallerResult.Outcome == PtReadOutcome.Failed)
                {
                    (fuzzCase, result, changed) = (smaller, smallerResult, true);
                    break;
                }
            }
        }

        return (fuzzCase, result);
    }

    private static string Report(ulong seed, long iteration, (FuzzCase Case, PtReadResult Result) failure)
    {
        string folder = Path.Combine(Path.GetTempPath(), "pt-fuzz-failures");
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, $"seed{seed}-iteration{iteration}.pt");
        File.WriteAllBytes(path, failure.Case.Build());
        return
            $"Iteration {iteration} of seed {seed} broke the reader's contract: {failure.Result.Problem}\n" +
            $"{failure.Case.Describe()}.\n" +
            $"The mutated file is at {path}. Replay it with PT_FUZZ_SEED={seed} PT_FUZZ_FIRST={iteration} PT_FUZZ_ITERATIONS=1, " +
            "fix the reader, then copy the file into tests/Orleans.Optim.Tests/Pt/Corpus/ so that CorpusFileReadsOrRejects replays it.";
    }

    /// <summary>Returns the first sentence of a message with numbers and quoted values removed, to count distinct checks.</summary>
    private static string MessagePattern(string message)
    {
        int end = message.IndexOf(". ", StringComparison.Ordinal);
        string sentence = end < 0 ? message : message[..end];
        var pattern = new System.Text.StringBuilder();
        bool inQuote = false;
        foreach (char c in sentence.Length > 160 ? sentence[..160] : sentence)
        {
            if (c == '\'')
            {
                inQuote = !inQuote;
                pattern.Append(c);
            }
            else if (!inQuote && !char.IsDigit(c))
            {
                pattern.Append(c);
            }
        }

        return pattern.ToString();
    }

    private static ulong ReadSetting(string name, ulong fallback)
    {
        string? text = Environment.GetEnvironmentVariable(name);
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        return ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value)
            ? value
            : throw new ArgumentException($"Environment variable {name} is '{text}', but it must be a non-negative integer. Unset it to use {fallback}.");
    }

    /// <summary>Returns the SplitMix64 finalizer of <paramref name="value"/>, so that neighboring iterations get unrelated generator seeds.</summary>
    private static ulong Mix(ulong value)
    {
        value += 0x9E3779B97F4A7C15;
        value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9;
        value = (value ^ (value >> 27)) * 0x94D049BB133111EB;
        return value ^ (value >> 31);
    }

    /// <summary>One generated case: a seed file, the mutations to apply to it, and the reader options.</summary>
    private sealed record FuzzCase(int SeedIndex, Mutation[] Mutations, bool UseTightOptions)
    {
        public PtReaderOptions Options => UseTightOptions ? TightOptions : PtReaderOptions.Default;

        public byte[] Build() => PtMutator.Apply(PtFuzzSeeds.All[SeedIndex], Mutations);

        public string Describe() =>
            $"seed file {PtFuzzSeeds.All[SeedIndex]}, {(UseTightOptions ? "tight" : "default")} options, mutations {string.Join(", ", Mutations)}";
    }
}
