using Orleans.Optim.Python;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Python 3's arithmetic on <c>int</c> (<see cref="long"/>) and <c>float</c> (<see cref="double"/>) values, so that a
/// scheduler keeps torch's result types (an <c>int</c> learning rate stays an <c>int</c> until a float multiplies it)
/// and its bits.
/// </summary>
/// <remarks>
/// An operation on two ints gives an int, except true division. Any float operand makes the other one a float first,
/// rounded to nearest as Python's <c>float(int)</c>. Division or modulo by zero raises
/// <see cref="DivideByZeroException"/> where Python raises <c>ZeroDivisionError</c>, and an int result outside
/// 64 bits raises <see cref="OverflowException"/>, where Python would return a larger int.
/// </remarks>
internal static class PythonArithmetic
{
    /// <summary>Largest magnitude up to which every int converts to a double exactly: 2**53.</summary>
    private const long ExactIntLimit = 1L << 53;

    /// <summary>Returns <c>a + b</c>.</summary>
    public static object Add(object a, object b) => (a, b) switch
    {
        (long x, long y) => (object)checked(x + y),
        _ => ToDouble(a) + ToDouble(b),
    };

    /// <summary>Returns <c>a - b</c>.</summary>
    public static object Subtract(object a, object b) => (a, b) switch
    {
        (long x, long y) => (object)checked(x - y),
        _ => ToDouble(a) - ToDouble(b),
    };

    /// <summary>Returns <c>a * b</c>.</summary>
    public static object Multiply(object a, object b) => (a, b) switch
    {
        (long x, long y) => (object)checked(x * y),
        _ => ToDouble(a) * ToDouble(b),
    };

    /// <summary>Returns <c>a / b</c>, which is always a float in Python 3.</summary>
    /// <exception cref="DivideByZeroException">The divisor is zero.</exception>
    public static double TrueDivide(object a, object b)
    {
        if (a is long x && b is long y)
        {
            if (y == 0)
            {
                throw new DivideByZeroException("division by zero");
            }

            // NOTE: Python divides ints above 2**53 exactly and rounds once. Here they are rounded to doubles first,
            // which can differ in the last bit. Below 2**53 both ways give the same bits.
            return (double)x / y;
        }

        double divisor = ToDouble(b);
        if (divisor == 0)
        {
            throw new DivideByZeroException("float division by zero");
        }

        return ToDouble(a) / divisor;
    }

    /// <summary>Returns <c>a // b</c>, rounded toward negative infinity as in Python.</summary>
    /// <exception cref="DivideByZeroException">The divisor is zero.</exception>
    public static object FloorDivide(object a, object b)
    {
        if (a is long x && b is long y)
        {
            if (y == 0)
            {
                throw new DivideByZeroException("integer division or modulo by zero");
            }

            long quotient = x / y;
            return (x % y != 0 && (x < 0) != (y < 0)) ? quotient - 1 : quotient;
        }

        return FloatDivMod(ToDouble(a), ToDouble(b)).FloorQuotient;
    }

    /// <summary>Returns <c>a % b</c>, which has the sign of the divisor in Python.</summary>
    /// <exception cref="DivideByZeroException">The divisor is zero.</exception>
    public static object Modulo(object a, object b)
    {
        if (a is long x && b is long y)
        {
            if (y == 0)
            {
                throw new DivideByZeroException("integer division or modulo by zero");
            }

            long remainder = x % y;
            return (remainder != 0 && (remainder < 0) != (y < 0)) ? remainder + y : remainder;
        }

        return FloatDivMod(ToDouble(a), ToDouble(b)).Modulo;
    }

    /// <summary>Returns <c>a ** b</c>: an int for an int base and a non-negative int exponent, otherwise C's <c>pow</c> on doubles.</summary>
    /// <exception cref="DivideByZeroException">Zero is raised to a negative power.</exception>
    /// <exception cref="ArithmeticException">A negative float is raised to a non-integer power, which is complex in Python.</exception>
    public static object Power(object a, object b)
    {
        if (a is long x && b is long y && y >= 0)
        {
            // Square-and-multiply. Every square is a factor of the result, so it overflows only when the result does.
            long result = 1;
            long factor = x;
            for (long bits = y; bits > 0; bits >>= 1)
            {
                if ((bits & 1) != 0)
                {
                    result = checked(result * factor);
                }

                if (bits > 1)
                {
                    factor = checked(factor * factor);
                }
            }

            return result;
        }

        double baseValue = ToDouble(a);
        double exponent = ToDouble(b);
        if (baseValue == 0 && exponent < 0)
        {
            throw new DivideByZeroException("0.0 cannot be raised to a negative power");
        }

        if (baseValue < 0 && double.IsFinite(baseValue) && double.IsFinite(exponent) && Math.Floor(exponent) != exponent)
        {
            throw new ArithmeticException($"{PythonValues.Format(a)} ** {PythonValues.Format(b)} is a complex number, which a learning rate cannot be");
        }

        return Math.Pow(baseValue, exponent);
    }

    /// <summary>Returns <c>math.cos(x)</c>, C's <c>cos</c> as Python calls it.</summary>
    public static double Cos(object x) => Math.Cos(ToDouble(x));

    /// <summary>Compares two numbers as Python's <c>&lt;</c> and <c>==</c> do: ints exactly, an int and a float by value.</summary>
    public static int Compare(object a, object b) => (a, b) switch
    {
        (long x, long y) => x.CompareTo(y),
        (long x, double y) => CompareIntToFloat(x, y),
        (double x, long y) => -CompareIntToFloat(y, x),
        _ => ToDouble(a).CompareTo(ToDouble(b)),
    };

    /// <summary>Returns whether <c>a == b</c> in Python, where <c>1 == 1.0</c> and NaN equals nothing.</summary>
    public static bool NumberEquals(object a, object b)
    {
        if (a is double x && double.IsNaN(x) || b is double y && double.IsNaN(y))
        {
            return false;
        }

        return Compare(a, b) == 0;
    }

    /// <summary>Returns Python's <c>min(a, b)</c>: the first argument unless the second is smaller.</summary>
    public static object Min(object a, object b) => Compare(b, a) < 0 ? b : a;

    /// <summary>Returns <c>float(x)</c> of an int or float.</summary>
    public static double ToDouble(object value) => value switch
    {
        double d => d,
        long l => l,
        _ => throw new InvalidCastException($"Expected a Python int or float, found {PythonValues.TypeName(value)} {PythonValues.Format(value)}."),
    };

    private static int CompareIntToFloat(long x, double y)
    {
        if (double.IsNaN(y))
        {
            // Python's comparisons with NaN are all False. Scheduler values are checked to be finite, so no caller passes NaN.
            return -1;
        }

        if (Math.Abs(x) <= ExactIntLimit)
        {
            return ((double)x).CompareTo(y);
        }

        // Compare through the integer part, which a double above 2**53 always is.
        if (y >= 9.2233720368547758E18)
        {
            return -1;
        }

        if (y < -9.2233720368547758E18)
        {
            return 1;
        }

        double floor = Math.Floor(y);
        int integerOrder = x.CompareTo((long)floor);
        return integerOrder != 0 ? integerOrder : (y > floor ? -1 : 0);
    }

    /// <summary>CPython's <c>_float_div_mod</c>: the floored quotient and the remainder with the divisor's sign.</summary>
    private static (double FloorQuotient, double Modulo) FloatDivMod(double vx, double wx)
    {
        if (wx == 0)
        {
            throw new DivideByZeroException("float modulo");
        }

        // C#'s % on doubles is C's fmod: exact, with the sign of the dividend.
        double mod = vx % wx;
        double div = (vx - mod) / wx;
        if (mod != 0)
        {
            if ((wx < 0) != (mod < 0))
            {
                mod += wx;
                div -= 1.0;
            }
        }
        else
        {
            mod = Math.CopySign(0.0, wx);
        }

        double floorDiv;
        if (div != 0)
        {
            floorDiv = Math.Floor(div);
            if (div - floorDiv > 0.5)
            {
                floorDiv += 1.0;
            }
        }
        else
        {
            floorDiv = Math.CopySign(0.0, vx / wx);
        }

        return (floorDiv, mod);
    }
}
