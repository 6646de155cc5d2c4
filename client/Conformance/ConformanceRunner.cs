using Orleans.Optim.Algorithms;
using Orleans.Optim.Client;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.StateDicts;

namespace Orleans.Optim.Cli.Conformance;

/// <summary>Outcome of one conformance case.</summary>
public enum CaseOutcome
{
    /// <summary>Everything matched PyTorch bit for bit.</summary>
    Pass,

    /// <summary>Something differed; the detail describes the first difference.</summary>
    Fail,

    /// <summary>The case's optimizer is not implemented.</summary>
    Unsupported,
}

/// <summary>Result of one conformance case.</summary>
/// <param name="Name">Case name.</param>
/// <param name="Outcome">Pass, fail or unsupported.</param>
/// <param name="Detail">The first difference, or why the case is unsupported.</param>
public sealed record CaseResult(string Name, CaseOutcome Outcome, string? Detail);

/// <summary>
/// Runs reference cases through a live cluster: every step, the final state dict, the <c>.pt</c> round trip, the
/// case's own torch-written <c>.pt</c>, and for resume cases a fresh optimizer loaded from the step-3 file.
/// </summary>
public sealed class ConformanceRunner(IGrainFactory grains, int maxShardElements, string? outputDirectory)
{
    /// <summary>Returns the case files under the given files and folders, skipping <c>group_keys.json</c> and step-3 files.</summary>
    /// <exception cref="FileNotFoundException">A path does not exist.</exception>
    public static IReadOnlyList<string> FindCases(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (string path in paths)
        {
            if (Directory.Exists(path))
            {
                files.AddRange(Directory.GetFiles(path, "*.json").Order(StringComparer.Ordinal));
            }
            else if (File.Exists(path))
            {
                files.Add(path);
            }
            else
            {
                throw new FileNotFoundException($"Conformance path '{path}' is neither a file nor a folder.", path);
            }
        }

        return files
            .Where(f => Path.GetFileName(f) != "group_keys.json" && !Path.GetFileNameWithoutExtension(f).EndsWith("_after_step3", StringComparison.Ordinal))
            .ToList();
    }

    /// <summary>Runs one case file.</summary>
    public async Task<CaseResult> RunAsync(string path)
    {
        string name = Path.GetFileNameWithoutExtension(path);
        ReferenceCase referenceCase;
        try
        {
            referenceCase = ReferenceCase.Load(path);
        }
        catch (Exception e) when (e is FormatException or IOException or System.Text.Json.JsonException)
        {
            // A file given by mistake, such as a README, fails here, so the message explains what a case file is.
            return new CaseResult(
                name,
                CaseOutcome.Fail,
                $"cannot read {path} as a reference case ({e.Message}); a case is a JSON file in the format of tests/fixtures/torch-1.13/README.md.");
        }

        if (!OptimizerAlgorithms.TryGet(referenceCase.Optimizer, out _))
        {
            return new CaseResult(name, CaseOutcome.Unsupported, $"optimizer {referenceCase.Optimizer} is not implemented");
        }

        try
        {
            string? difference = await CheckAsync(referenceCase);
            return new CaseResult(name, difference is null ? CaseOutcome.Pass : CaseOutcome.Fail, difference);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new CaseResult(name, CaseOutcome.Fail, $"{e.GetType().Name}: {e.Message}");
        }
    }

    private async Task<string?> CheckAsync(ReferenceCase referenceCase)
    {
        var (difference, final) = await CaseReplay.RunAsync(grains, referenceCase, UniqueName(referenceCase.Name), maxShardElements);
        if (difference is not null)
        {
            return difference;
        }

        // The exported .pt reads back to the same state dict.
        string exported = outputDirectory is not null
            ? Path.Combine(outputDirectory, referenceCase.Name + ".pt")
            : Path.Combine(Path.GetTempPath(), $"orleans-optim-{Guid.NewGuid():N}.pt");
        try
        {
            StateDictFiles.WriteOptimizer(exported, final!);
            difference = StateDictComparison.FirstDifference(referenceCase.FinalStateDict, StateDictFiles.ReadOptimizer(exported));
            if (difference is not null)
            {
                return "exported .pt: " + difference;
            }
        }
        finally
        {
            if (outputDirectory is null)
            {
                File.Delete(exported);
            }
        }

        // The case's own torch-written .pt reads as the recorded state dict.
        if (referenceCase.TorchStateFile is { } torchFile)
        {
            difference = StateDictComparison.FirstDifference(referenceCase.FinalStateDict, StateDictFiles.ReadOptimizer(torchFile));
            if (difference is not null)
            {
                return $"{Path.GetFileName(torchFile)} as read: " + difference;
            }
        }

        return referenceCase.ResumeStateFile is null ? null : await CheckResumeAsync(referenceCase);
    }

    private async Task<string?> CheckResumeAsync(ReferenceCase referenceCase)
    {
        var ids = referenceCase.ParamIndicesById;
        var optimizer = await ClusterOptimizer.CreateAsync(
            grains, UniqueName(referenceCase.Name + "-resume"), referenceCase.ToSpec(maxShardElements), ids.Select(i => referenceCase.ResumeParams[i]).ToList());
        await optimizer.LoadStateDictAsync(StateDictFiles.ReadOptimizer(referenceCase.ResumeStateFile!));

        string? difference = await CaseReplay.RunStepsAsync(optimizer, referenceCase, referenceCase.ResumeAfterStep + 1);
        if (difference is not null)
        {
            return $"resumed from {Path.GetFileName(referenceCase.ResumeStateFile)}: {difference}";
        }

        difference = StateDictComparison.FirstDifference(referenceCase.FinalStateDict, await optimizer.StateDictAsync());
        return difference is null ? null : $"resumed from {Path.GetFileName(referenceCase.ResumeStateFile)}, final state dict: {difference}";
    }

    private static string UniqueName(string caseName) => $"conformance-{caseName}-{Guid.NewGuid().ToString("N")[..8]}";
}
