using Orleans.Optim.Python;
using Orleans.Optim.Schedulers;

namespace Orleans.Optim.Tests.Schedulers;

/// <summary>Python 3's int and float arithmetic, with results that Python 3.11 prints for the same expressions.</summary>
public sealed class PythonArithmeticTests
{
    public static TheoryData<string, object, string> Cases => new()
    {
        { "-7 % 3", PythonArithmetic.Modulo(-7L, 3L), "2" },
        { "7 % -3", PythonArithmetic.Modulo(7L, -3L), "-2" },
        { "-7.5 % 2", PythonArithmetic.Modulo(-7.5, 2L), "0.5" },
        { "7.5 % -2", PythonArithmetic.Modulo(7.5, -2L), "-0.5" },
        { "-4.0 % 2", PythonArithmetic.Modulo(-4.0, 2L), "0.0" },
        { "-7 // 2", PythonArithmetic.FloorDivide(-7L, 2L), "-4" },
        { "7.5 // 2", PythonArithmetic.FloorDivide(7.5, 2L), "3.0" },
        { "-7.5 // 2", PythonArithmetic.FloorDivide(-7.5, 2L), "-4.0" },
        { "2 ** 10", PythonArithmetic.Power(2L, 10L), "1024" },
        { "3 ** 0", PythonArithmetic.Power(3L, 0L), "1" },
        { "2 ** -1", PythonArithmetic.Power(2L, -1L), "0.5" },
        { "-1 ** 3 (as (-1) ** 3)", PythonArithmetic.Power(-1L, 3L), "-1" },
        { "0.1 ** 2", PythonArithmetic.Power(0.1, 2L), "0.010000000000000002" },
        { "1 / 3", PythonArithmetic.TrueDivide(1L, 3L), "0.3333333333333333" },
        { "1 + 0.1", PythonArithmetic.Add(1L, 0.1), "1.1" },
        { "1 * 0.5", PythonArithmetic.Multiply(1L, 0.5), "0.5" },
        { "3 - 1", PythonArithmetic.Subtract(3L, 1L), "2" },
        { "min(5.0, 5)", PythonArithmetic.Min(5.0, 5L), "5.0" },
        { "min(5, 4.0)", PythonArithmetic.Min(5L, 4.0), "4.0" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ResultMatchesPython(string expression, object result, string python)
    {
        Assert.True(PythonValues.Format(result) == python, $"{expression}: Python gives {python}, found {PythonValues.TypeName(result)} {PythonValues.Format(result)}.");
    }

    [Fact]
    public void DivisionByZeroRaises()
    {
        Assert.Throws<DivideByZeroException>(() => PythonArithmetic.TrueDivide(1L, 0L));
        Assert.Throws<DivideByZeroException>(() => PythonArithmetic.TrueDivide(1.0, 0.0));
        Assert.Throws<DivideByZeroException>(() => PythonArithmetic.Modulo(1L, 0L));
        Assert.Throws<DivideByZeroException>(() => PythonArithmetic.Modulo(1.0, 0L));
        Assert.Throws<DivideByZeroException>(() => PythonArithmetic.Power(0.0, -1L));
    }

    [Fact]
    public void IntOverflowRaises()
    {
        Assert.Throws<OverflowException>(() => PythonArithmetic.Power(10L, 19L));
        Assert.Throws<OverflowException>(() => PythonArithmetic.Multiply(long.MaxValue, 2L));
    }

    [Fact]
    public void MixedComparisonsFollowPython()
    {
        Assert.True(PythonArithmetic.NumberEquals(1L, 1.0));
        Assert.False(PythonArithmetic.NumberEquals(1L, double.NaN));
        Assert.True(PythonArithmetic.Compare(9007199254740993L, 9007199254740992.0) > 0, "2**53 + 1 > float(2**53) in Python.");
        Assert.True(PythonArithmetic.Compare(2L, 2.5) < 0);
    }
}
