using Orleans.Optim.Python;

namespace Orleans.Optim.Schedulers;

/// <summary>Checks and descriptions of the Python values that schedulers read.</summary>
internal static class SchedulerValues
{
    private const int MaxDescriptionLength = 120;

    /// <summary>Returns the value as a Python int or float when it is a finite number (not a bool), or null.</summary>
    public static object? AsFiniteNumber(object? value) => value switch
    {
        long number => (object)number,
        int number => (object)(long)number,
        double number when double.IsFinite(number) => (object)number,
        _ => null,
    };

    /// <summary>Describes a value for a message: its Python type and repr, shortened to about 120 characters.</summary>
    public static string Describe(object? value)
    {
        string text = PythonValues.Format(value);
        if (text.Length > MaxDescriptionLength)
        {
            text = text[..MaxDescriptionLength] + "...";
        }

        return $"{PythonValues.TypeName(value)} {text}";
    }

    /// <summary>Returns Python's <c>bisect.bisect_right(sorted, value)</c>: how many items are less than or equal to the value.</summary>
    public static int BisectRight(IReadOnlyList<long> sorted, long value)
    {
        int low = 0;
        int high = sorted.Count;
        while (low < high)
        {
            int middle = (low + high) / 2;
            if (value < sorted[middle])
            {
                high = middle;
            }
            else
            {
                low = middle + 1;
            }
        }

        return low;
    }
}
