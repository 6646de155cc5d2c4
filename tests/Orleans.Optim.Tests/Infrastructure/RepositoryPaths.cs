namespace Orleans.Optim.Tests.Infrastructure;

/// <summary>Paths inside the repository, found from the test assembly's location.</summary>
public static class RepositoryPaths
{
    /// <summary>The repository root: the nearest parent folder that contains <c>Orleans.Optim.sln</c>.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The project's own torch 1.13 reference cases.</summary>
    public static string TorchFixtures => Path.Combine(Root, "tests", "fixtures", "torch-1.13");

    /// <summary>
    /// The silo host in its own output folder, built by the test project's reference in the same configuration.
    /// It runs from there because it is an ASP.NET Core app whose assemblies do not belong in the test folder.
    /// </summary>
    public static string SiloAssembly { get; } = Path.Combine(
        Root, "silo", "bin", new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name, "net10.0", "Orleans.Optim.Silo.dll");

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Orleans.Optim.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Orleans.Optim.sln above {AppContext.BaseDirectory}; run the tests from the repository.");
    }
}
