using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Prints benchmark figures as a text table or as JSON lines.</summary>
public static class BenchReport
{
    /// <summary>
    /// Writes one JSON object per figure and line. Fields: <c>benchmark</c>, <c>name</c>, <c>detail</c>,
    /// <c>threads</c>, <c>elements</c>, <c>repetitions</c>, <c>bytes_per_element</c>, <c>median_s</c>, <c>min_s</c>,
    /// <c>max_s</c>, <c>gb_per_s</c>, <c>baseline</c>, <c>baseline_median_s</c>, <c>baseline_gb_per_s</c>,
    /// <c>ratio</c>, <c>target_ratio</c>, <c>meets_target</c>, <c>bits_match_plain</c>, <c>load_average</c> and, when
    /// given, <c>other_cpu_share</c> (the share of the machine's CPU time that other processes used during the run). A
    /// baseline figure has <c>null</c> in the baseline fields. The figure's <see cref="Measurement.Extra"/> numbers
    /// follow as further fields.
    /// </summary>
    public static void WriteJsonLines(string benchmark, IEnumerable<BenchFigure> figures, double? loadAverage, TextWriter output, double? otherCpuShare = null)
    {
        foreach (var figure in figures)
        {
            var m = figure.Measurement;
            var b = figure.Baseline;
            using var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("benchmark", benchmark);
                json.WriteString("name", m.Name);
                json.WriteString("detail", m.Detail);
                json.WriteNumber("threads", m.Threads);
                json.WriteNumber("elements", m.Elements);
                json.WriteNumber("repetitions", m.Seconds.Count);
                json.WriteNumber("bytes_per_element", m.BytesPerElement);
                json.WriteNumber("median_s", m.MedianSeconds);
                json.WriteNumber("min_s", m.MinSeconds);
                json.WriteNumber("max_s", m.MaxSeconds);
                json.WriteNumber("gb_per_s", m.GigabytesPerSecond);
                WriteNullable(json, "baseline", b?.Name);
                WriteNullable(json, "baseline_median_s", b?.MedianSeconds);
                WriteNullable(json, "baseline_gb_per_s", b?.GigabytesPerSecond);
                WriteNullable(json, "ratio", figure.Ratio);
                WriteNullable(json, "target_ratio", figure.TargetRatio);
                WriteNullable(json, "meets_target", figure.MeetsTarget);
                WriteNullable(json, "bits_match_plain", m.BitsMatchPlain);
                WriteNullable(json, "load_average", loadAverage);
                if (otherCpuShare is { } share)
                {
                    json.WriteNumber("other_cpu_share", share);
                }

                foreach (var (key, value) in m.Extra)
                {
                    json.WriteNumber(key, value);
                }

                json.WriteEndObject();
            }

            output.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
        }
    }

    /// <summary>Writes the figures as an aligned table, one row per figure, with the notes below it.</summary>
    public static void WriteTable(IEnumerable<BenchFigure> figures, IEnumerable<string> notes, TextWriter output)
    {
        output.WriteLine(
            $"{"figure",-24} {"threads",7} {"median",11} {"GB/s",7}  {"baseline",-16} {"baseline median",15} {"ratio",7}  {"target",-7} {"met",-5}  {"bits",-7}");
        foreach (var figure in figures)
        {
            var m = figure.Measurement;
            var b = figure.Baseline;
            string bits = m.BitsMatchPlain switch
            {
                true => "= plain",
                false => "DIFFER",
                null => "",
            };
            string target = figure.TargetRatio is { } t ? ">= " + t.ToString("0.##", CultureInfo.InvariantCulture) : "";
            string met = figure.MeetsTarget switch
            {
                true => "yes",
                false => "no",
                null => "",
            };
            output.WriteLine(
                $"{m.Name,-24} {m.Threads,7} {Milliseconds(m.MedianSeconds),11} {m.GigabytesPerSecond,7:F1}  {b?.Name ?? "-",-16} " +
                $"{(b is null ? "" : Milliseconds(b.MedianSeconds)),15} {(figure.Ratio is { } r ? r.ToString("F2", CultureInfo.InvariantCulture) : ""),7}  {target,-7} {met,-5}  {bits,-7}");
        }

        foreach (string note in notes)
        {
            output.WriteLine(note);
        }
    }

    private static string Milliseconds(double seconds) => (seconds * 1e3).ToString("F2", CultureInfo.InvariantCulture) + " ms";

    private static void WriteNullable(Utf8JsonWriter json, string name, string? value)
    {
        if (value is null)
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteString(name, value);
        }
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, double? value)
    {
        if (value is { } number)
        {
            json.WriteNumber(name, number);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, bool? value)
    {
        if (value is { } flag)
        {
            json.WriteBoolean(name, flag);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
