using System.Globalization;
using System.Xml.Linq;
using Orleans.Optim.Cli.Bench;

namespace Orleans.Optim.Tests.CommandLine;

public sealed class StepChartTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static BenchFigure Step(int silos, long elements, double stepSeconds, double tcpSeconds)
    {
        KeyValuePair<string, double>[] extra = [new("silos", silos)];
        var tcp = new Measurement($"tcp.{silos}silos.{elements}", 1, elements, 8, [tcpSeconds], "loopback") { Extra = extra };
        var step = new Measurement($"step.{silos}silos.{elements}", 1, elements, 8, [stepSeconds], "step") { Extra = extra };
        return new BenchFigure(step, tcp, 0.5);
    }

    [Fact]
    public void ChartDrawsEverySeries()
    {
        // 3 silo counts by 2 parameter counts; the step of 10M elements on 1 silo moves 80 MB in 0.1 s, 0.8 GB/s.
        var figures = new List<BenchFigure>();
        foreach (int silos in new[] { 1, 2, 3 })
        {
            figures.Add(Step(silos, 1_000_000, 0.02 * silos, 0.005));
            figures.Add(Step(silos, 10_000_000, 0.1 * silos, 0.04));
        }

        figures.Add(new BenchFigure(figures[0].Baseline!));

        var root = XDocument.Parse(StepChart.Render(figures)).Root!;

        Assert.Equal(Svg + "svg", root.Name);
        var polylines = root.Descendants(Svg + "polyline").ToList();
        Assert.Equal(2 * 2 + 3 * 2, polylines.Count);
        Assert.Equal(5, polylines.Count(p => p.Attribute("stroke-dasharray") is not null));
        Assert.Equal(12, root.Descendants(Svg + "circle").Count());
        var texts = root.Descendants(Svg + "text").Select(t => t.Value).ToList();
        Assert.Contains("1M parameters", texts);
        Assert.Contains("10M parameters", texts);
        Assert.Contains("1 silo", texts);
        Assert.Contains("3 silos", texts);
        Assert.Contains("0.8 GB/s", root.Descendants(Svg + "title").Select(t => t.Value));
    }

    [Fact]
    public void ChartPointsFollowThroughput()
    {
        // The faster step's dot sits higher, which in SVG is a smaller y.
        var figures = new[] { Step(1, 1_000_000, 0.04, 0.01), Step(2, 1_000_000, 0.02, 0.01) };

        var root = XDocument.Parse(StepChart.Render(figures)).Root!;

        var dots = root.Descendants(Svg + "circle").Take(2).Select(c => double.Parse(c.Attribute("cy")!.Value, CultureInfo.InvariantCulture)).ToList();
        Assert.True(dots[1] < dots[0], $"The 2-silo dot (y {dots[1]}) is not above the 1-silo dot (y {dots[0]}).");
    }

    [Fact]
    public void ChartRejectsFiguresWithoutSteps()
    {
        var kernel = new BenchFigure(new Measurement("triad.1t", 1, 1000, 16, [0.001], "triad"));

        var error = Assert.Throws<ArgumentException>(() => StepChart.Render([kernel]));

        Assert.Contains("No step figures to draw", error.Message);
    }
}
