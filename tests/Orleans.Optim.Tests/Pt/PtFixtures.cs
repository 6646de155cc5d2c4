using System.Text.Json;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Pt;

/// <summary>
/// Access to the committed torch fixtures of <c>Pt/Fixtures</c> and to <c>pt_oracle.py</c>, which runs real
/// PyTorch 1.13 on files the tests write.
/// </summary>
internal static class PtFixtures
{
    /// <summary>Fixtures written by <c>generate_fixtures.py</c> whose root torch.load returns as a state dict.</summary>
    public static readonly string[] StateFixtures = ["adam_state", "sgd_state", "model_state", "parameters_state", "views_state"];

    private static readonly Lazy<string> OracleScript = new(() => File.ReadAllText(PathOf("pt_oracle.py")));

    /// <summary>Returns the path of a file in the copied fixture folder.</summary>
    public static string PathOf(string fileName) => Path.Combine(AppContext.BaseDirectory, "Pt", "Fixtures", fileName);

    /// <summary>Returns what torch.load saw in the fixture <paramref name="name"/> when it was generated.</summary>
    public static JsonElement Expected(string name)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(PathOf(name + ".expected.json")));
        return document.RootElement.Clone();
    }

    /// <summary>Runs a <c>pt_oracle.py</c> command under real torch and returns its JSON output.</summary>
    public static JsonElement RunOracle(params string[] arguments)
    {
        string output = PythonTorch.Run(OracleScript.Value, arguments);
        using var document = JsonDocument.Parse(output);
        return document.RootElement.Clone();
    }

    /// <summary>Returns a new empty folder under the system temporary folder for one test.</summary>
    public static string NewTemporaryFolder()
    {
        string folder = Path.Combine(Path.GetTempPath(), "orleans-optim-pt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return folder;
    }
}
