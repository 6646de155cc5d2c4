using System.Globalization;
using System.Text;
using System.Xml;

namespace Orleans.Optim.Cli.Bench;

/// <summary>
/// Draws the step benchmark's figures as an SVG chart with two panels: payload throughput against the number of
/// silo processes (one line per parameter count), and against the parameter count (one line per silo count). Solid
/// lines with dots are the steps, and dashed lines of the same colour are their loopback TCP baselines.
/// </summary>
/// <remarks>
/// The chart is computed from the figures alone, so the same figures always give the same file. A step figure is a
/// figure with a baseline and an extra field <c>silos</c>, as <see cref="StepBenchmark"/> writes them.
/// </remarks>
public static class StepChart
{
    private const double PanelWidth = 420;
    private const double PanelHeight = 300;
    private const double MarginLeft = 64;
    private const double MarginTop = 58;
    private const double MarginBottom = 96;
    private const double PanelGap = 90;
    private const double MarginRight = 24;

    private static readonly string[] Colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

    /// <summary>Writes the chart of <paramref name="figures"/> to the file <paramref name="path"/>, replacing it.</summary>
    /// <exception cref="ArgumentException">The figures contain no step figure.</exception>
    public static void WriteSvg(string path, IReadOnlyList<BenchFigure> figures)
    {
        string svg = Render(figures);
        File.WriteAllText(path, svg, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
    }

    /// <summary>Returns the SVG text of the chart of <paramref name="figures"/>.</summary>
    /// <exception cref="ArgumentException">The figures contain no step figure.</exception>
    public static string Render(IReadOnlyList<BenchFigure> figures)
    {
        var points = figures
            .Where(f => f.Baseline is not null)
            .Select(ToPoint)
            .OfType<StepPoint>()
            .ToList();
        if (points.Count == 0)
        {
            throw new ArgumentException("No step figures to draw: expected figures of 'client bench step', which have a baseline and a 'silos' field.", nameof(figures));
        }

        int[] siloCounts = [.. points.Select(p => p.Silos).Distinct().Order()];
        long[] elementCounts = [.. points.Select(p => p.Elements).Distinct().Order()];
        double maxThroughput = points.Max(p => Math.Max(p.StepGigabytesPerSecond, p.LoopbackGigabytesPerSecond));
        double yMax = NiceCeiling(maxThroughput);

        var output = new StringBuilder();
        var settings = new XmlWriterSettings { Indent = true, OmitXmlDeclaration = true, Encoding = Encoding.UTF8 };
        using (var svg = XmlWriter.Create(output, settings))
        {
            double width = MarginLeft + PanelWidth + PanelGap + PanelWidth + MarginRight;
            double height = MarginTop + PanelHeight + MarginBottom;
            svg.WriteStartElement("svg", "http://www.w3.org/2000/svg");
            svg.WriteAttributeString("width", Number(width));
            svg.WriteAttributeString("height", Number(height));
            svg.WriteAttributeString("viewBox", $"0 0 {Number(width)} {Number(height)}");
            svg.WriteAttributeString("font-family", "sans-serif");
            svg.WriteAttributeString("font-size", "12");
            Rectangle(svg, 0, 0, width, height, "white");
            Text(svg, width / 2, 22, "Synchronous Adam step of one worker: payload throughput (gradient in, values back)", "middle", 15);
            Text(svg, width / 2, 40, "solid: step through Orleans silo processes; dashed: plain loopback TCP transfer of the same bytes in the same run", "middle", 11);

            // Left panel: throughput against the silo count, one line per parameter count.
            var bySilos = new Panel(MarginLeft, MarginTop, "silo processes", yMax, siloCounts.Select(s => (double)s).ToArray(), s => Number(s), logarithmic: false);
            DrawPanel(svg, bySilos);
            for (int i = 0; i < elementCounts.Length; i++)
            {
                var series = points.Where(p => p.Elements == elementCounts[i]).OrderBy(p => p.Silos).ToList();
                string colour = Colours[i % Colours.Length];
                DrawSeries(svg, bySilos, series.Select(p => (double)p.Silos).ToList(), series.Select(p => p.StepGigabytesPerSecond).ToList(), colour, dashed: false);
                DrawSeries(svg, bySilos, series.Select(p => (double)p.Silos).ToList(), series.Select(p => p.LoopbackGigabytesPerSecond).ToList(), colour, dashed: true);
                Legend(svg, bySilos, i, colour, $"{ElementsLabel(elementCounts[i])} parameters");
            }

            // Right panel: throughput against the parameter count on a logarithmic axis, one line per silo count.
            double right = MarginLeft + PanelWidth + PanelGap;
            var byElements = new Panel(right, MarginTop, "parameters (logarithmic)", yMax, elementCounts.Select(e => (double)e).ToArray(), e => ElementsLabel((long)e), logarithmic: true);
            DrawPanel(svg, byElements);
            for (int i = 0; i < siloCounts.Length; i++)
            {
                var series = points.Where(p => p.Silos == siloCounts[i]).OrderBy(p => p.Elements).ToList();
                string colour = Colours[i % Colours.Length];
                DrawSeries(svg, byElements, series.Select(p => (double)p.Elements).ToList(), series.Select(p => p.StepGigabytesPerSecond).ToList(), colour, dashed: false);
                DrawSeries(svg, byElements, series.Select(p => (double)p.Elements).ToList(), series.Select(p => p.LoopbackGigabytesPerSecond).ToList(), colour, dashed: true);
                Legend(svg, byElements, i, colour, siloCounts[i] == 1 ? "1 silo" : $"{siloCounts[i]} silos");
            }

            svg.WriteEndElement();
        }

        return output.ToString() + "\n";
    }

    /// <summary>Returns the step figure as a chart point, or <see langword="null"/> for a figure that has no <c>silos</c> field.</summary>
    private static StepPoint? ToPoint(BenchFigure figure)
    {
        var silos = figure.Measurement.Extra.Where(e => e.Key == "silos").Select(e => (double?)e.Value).FirstOrDefault();
        if (silos is null)
        {
            return null;
        }

        return new StepPoint((int)silos.Value, figure.Measurement.Elements, figure.Measurement.GigabytesPerSecond, figure.Baseline!.GigabytesPerSecond);
    }

    private static void DrawPanel(XmlWriter svg, Panel panel)
    {
        Rectangle(svg, panel.Left, panel.Top, PanelWidth, PanelHeight, "none", "#888888");

        // Horizontal grid lines and labels of the throughput axis, in five steps.
        const int yTicks = 5;
        for (int i = 0; i <= yTicks; i++)
        {
            double value = panel.YMax * i / yTicks;
            double y = panel.Y(value);
            Line(svg, panel.Left, y, panel.Left + PanelWidth, y, "#dddddd", dashed: false);
            Text(svg, panel.Left - 6, y + 4, value.ToString("0.##", CultureInfo.InvariantCulture), "end", 11);
        }

        foreach (double x in panel.XValues)
        {
            double px = panel.X(x);
            Line(svg, px, panel.Top + PanelHeight, px, panel.Top + PanelHeight + 5, "#888888", dashed: false);
            Text(svg, px, panel.Top + PanelHeight + 18, panel.XLabel(x), "middle", 11);
        }

        Text(svg, panel.Left + PanelWidth / 2, panel.Top + PanelHeight + 36, panel.XTitle, "middle", 12);
        svg.WriteStartElement("text");
        svg.WriteAttributeString("transform", $"translate({Number(panel.Left - 44)},{Number(panel.Top + PanelHeight / 2)}) rotate(-90)");
        svg.WriteAttributeString("text-anchor", "middle");
        svg.WriteString("payload GB/s");
        svg.WriteEndElement();
    }

    private static void DrawSeries(XmlWriter svg, Panel panel, IReadOnlyList<double> xs, IReadOnlyList<double> ys, string colour, bool dashed)
    {
        var coordinates = xs.Zip(ys, (x, y) => $"{Number(panel.X(x))},{Number(panel.Y(y))}");
        svg.WriteStartElement("polyline");
        svg.WriteAttributeString("points", string.Join(" ", coordinates));
        svg.WriteAttributeString("fill", "none");
        svg.WriteAttributeString("stroke", colour);
        svg.WriteAttributeString("stroke-width", dashed ? "1.5" : "2");
        if (dashed)
        {
            svg.WriteAttributeString("stroke-dasharray", "6 4");
        }

        svg.WriteEndElement();
        if (dashed)
        {
            return;
        }

        for (int i = 0; i < xs.Count; i++)
        {
            svg.WriteStartElement("circle");
            svg.WriteAttributeString("cx", Number(panel.X(xs[i])));
            svg.WriteAttributeString("cy", Number(panel.Y(ys[i])));
            svg.WriteAttributeString("r", "3.5");
            svg.WriteAttributeString("fill", colour);
            svg.WriteStartElement("title");
            svg.WriteString($"{ys[i].ToString("0.###", CultureInfo.InvariantCulture)} GB/s");
            svg.WriteEndElement();
            svg.WriteEndElement();
        }
    }

    private static void Legend(XmlWriter svg, Panel panel, int index, string colour, string label)
    {
        // Two legend entries per row below the panel's axis title.
        double x = panel.Left + (index % 2) * (PanelWidth / 2);
        double y = panel.Top + PanelHeight + 56 + (index / 2) * 16;
        Line(svg, x, y - 4, x + 24, y - 4, colour, dashed: false);
        Text(svg, x + 30, y, label, "start", 11);
    }

    private static void Rectangle(XmlWriter svg, double x, double y, double width, double height, string fill, string? stroke = null)
    {
        svg.WriteStartElement("rect");
        svg.WriteAttributeString("x", Number(x));
        svg.WriteAttributeString("y", Number(y));
        svg.WriteAttributeString("width", Number(width));
        svg.WriteAttributeString("height", Number(height));
        svg.WriteAttributeString("fill", fill);
        if (stroke is not null)
        {
            svg.WriteAttributeString("stroke", stroke);
        }

        svg.WriteEndElement();
    }

    private static void Line(XmlWriter svg, double x1, double y1, double x2, double y2, string colour, bool dashed)
    {
        svg.WriteStartElement("line");
        svg.WriteAttributeString("x1", Number(x1));
        svg.WriteAttributeString("y1", Number(y1));
        svg.WriteAttributeString("x2", Number(x2));
        svg.WriteAttributeString("y2", Number(y2));
        svg.WriteAttributeString("stroke", colour);
        if (dashed)
        {
            svg.WriteAttributeString("stroke-dasharray", "6 4");
        }

        svg.WriteEndElement();
    }

    private static void Text(XmlWriter svg, double x, double y, string text, string anchor, double size)
    {
        svg.WriteStartElement("text");
        svg.WriteAttributeString("x", Number(x));
        svg.WriteAttributeString("y", Number(y));
        svg.WriteAttributeString("text-anchor", anchor);
        svg.WriteAttributeString("font-size", Number(size));
        svg.WriteString(text);
        svg.WriteEndElement();
    }

    /// <summary>Returns a short label of a parameter count, such as 10M or 500k.</summary>
    internal static string ElementsLabel(long elements) => elements switch
    {
        >= 1_000_000 when elements % 100_000 == 0 => (elements / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + "M",
        >= 1_000 when elements % 100 == 0 => (elements / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k",
        _ => elements.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Returns the smallest of 1, 2, 2.5 or 5 times a power of ten that is at least <paramref name="value"/>.</summary>
    internal static double NiceCeiling(double value)
    {
        if (!(value > 0) || !double.IsFinite(value))
        {
            return 1;
        }

        double power = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (double factor in new[] { 1.0, 2.0, 2.5, 5.0, 10.0 })
        {
            if (factor * power >= value)
            {
                return factor * power;
            }
        }

        return 10 * power;
    }

    private static string Number(double value) => Math.Round(value, 2).ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>One step figure: its silo count, parameter count, and the payload throughput of the step and of its loopback baseline.</summary>
    private sealed record StepPoint(int Silos, long Elements, double StepGigabytesPerSecond, double LoopbackGigabytesPerSecond);

    /// <summary>
    /// A panel's position and axes. The x positions spread the panel's x values on a linear or logarithmic scale,
    /// with a margin at either side. A single x value sits in the middle.
    /// </summary>
    private sealed class Panel(double left, double top, string xTitle, double yMax, double[] xValues, Func<double, string> xLabel, bool logarithmic)
    {
        private const double Inset = 36;

        public double Left { get; } = left;

        public double Top { get; } = top;

        public string XTitle { get; } = xTitle;

        public double YMax { get; } = yMax;

        public double[] XValues { get; } = xValues;

        public string XLabel(double x) => xLabel(x);

        public double X(double x)
        {
            double Scale(double v) => logarithmic ? Math.Log10(v) : v;
            double low = Scale(XValues[0]);
            double high = Scale(XValues[^1]);
            if (high <= low)
            {
                return Left + PanelWidth / 2;
            }

            return Left + Inset + (Scale(x) - low) / (high - low) * (PanelWidth - 2 * Inset);
        }

        public double Y(double y) => Top + PanelHeight - Math.Clamp(y / YMax, 0, 1) * PanelHeight;
    }
}
