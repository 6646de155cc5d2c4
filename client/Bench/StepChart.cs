namespace Orleans.Optim.Cli.Bench;

/// <summary>Placeholder until the chart writer exists.</summary>
public static class StepChart
{
    /// <summary>Writes the chart.</summary>
    public static void WriteSvg(string path, IReadOnlyList<BenchFigure> figures) => throw new NotImplementedException();
}
