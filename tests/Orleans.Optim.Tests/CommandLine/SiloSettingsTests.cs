using Orleans.Optim.Hosting;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>Range checks of the silo's timeouts and counts, and how a silo process reports them.</summary>
public sealed class SiloSettingsTests
{
    [Theory]
    [InlineData("00:00:00")]
    [InlineData("-00:00:01")]
    [InlineData("1.00:00:01")]
    [InlineData("5.00:00:00")]
    public void ValidateRejectsStepTimeoutOutOfRange(string value)
    {
        var settings = new SiloSettings();
        settings.Shards.StepTimeout = TimeSpan.Parse(value);

        var error = Assert.Throws<ArgumentException>(settings.Validate);

        Assert.Equal(
            $"Invalid Optim:Silo:Shards:StepTimeout {settings.Shards.StepTimeout}: expected a positive time span of at most 1 day, " +
            "written hh:mm:ss such as 00:01:00. A bare number such as 5 is read as days.",
            error.Message);
    }

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("2.00:00:00")]
    public void ValidateRejectsRecoveryTimeoutOutOfRange(string value)
    {
        var settings = new SiloSettings();
        settings.Checkpoints.RecoveryTimeout = TimeSpan.Parse(value);

        var error = Assert.Throws<ArgumentException>(settings.Validate);

        Assert.StartsWith($"Invalid Optim:Silo:Checkpoints:RecoveryTimeout {settings.Checkpoints.RecoveryTimeout}: expected a positive time span", error.Message);
    }

    [Fact]
    public void ValidateAcceptsOneDayTimeouts()
    {
        var settings = new SiloSettings();
        settings.Shards.StepTimeout = SiloSettings.MaxTimeout;
        settings.Checkpoints.RecoveryTimeout = SiloSettings.MaxTimeout;

        settings.Validate();

        Assert.Equal(TimeSpan.FromDays(1), settings.Shards.StepTimeout);
    }

    [Fact]
    public void SiloProcessRejectsBareNumberTimeout()
    {
        using var silo = SiloProcess.Start(new Dictionary<string, string> { ["Shards:StepTimeout"] = "5" });

        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(60)), "The silo still ran 60 s after it was given a 5-day step timeout.");
        Assert.Equal(1, silo.ExitCode);
        Assert.StartsWith("error: Invalid Optim:Silo:Shards:StepTimeout 5.00:00:00: expected a positive time span of at most 1 day", silo.Output);
        Assert.Single(silo.Output.Trim().Split('\n'));
    }

    [Theory]
    [InlineData("Typo", "1", "error: Unknown setting(s) under Optim:Silo: 'Typo'. Check the spelling against the silo settings table in README.md.")]
    [InlineData("Shards:StepTimeout", "xyz", "error: Invalid Optim:Silo:Shards:StepTimeout 'xyz': expected a time span written hh:mm:ss, such as 00:01:00.")]
    [InlineData("ListenOnAnyAddress", "maybe", "error: Invalid Optim:Silo:ListenOnAnyAddress 'maybe': expected true or false.")]
    public void SiloProcessRejectsBadSetting(string key, string value, string expected)
    {
        using var silo = SiloProcess.Start(new Dictionary<string, string> { [key] = value });

        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(60)), $"The silo still ran 60 s after it was given {key}={value}.");
        Assert.Equal(1, silo.ExitCode);
        Assert.Equal(expected, silo.Output.Trim());
    }
}
