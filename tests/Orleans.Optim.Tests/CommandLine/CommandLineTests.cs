using System.Text.Json;
using System.Text.Json.Nodes;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Tests.Infrastructure;
using Orleans.Optim.Tests.Pt;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>The <c>client</c> command run as a separate process: its output, files and exit codes.</summary>
public sealed class CommandLineTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-cli-").FullName;

    [Fact]
    public void TrainWritesSummaryAndCheckpoints()
    {
        var result = CommandRunner.RunClient(
            ["train", "--epochs", "3", "--workers", "2", "--checkpoint-every", "2", "--checkpoint-dir", "run", "--summary", "summary.json"], _folder);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("epoch   3/3", result.Output);
        Assert.Contains("held-out accuracy", result.Output);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(_folder, "summary.json")))!;
        Assert.Equal(3, summary["epochs"]!.GetValue<int>());
        Assert.Equal(69, summary["steps"]!.GetValue<long>());
        Assert.True(File.Exists(summary["optimizer_checkpoint"]!.GetValue<string>()));
        Assert.True(Directory.Exists(Path.Combine(_folder, "run", "epoch-0002")));
        Assert.True(Directory.Exists(Path.Combine(_folder, "run", "epoch-0003")));
    }

    [Fact]
    public void CheckpointsCommandGuidesToStore()
    {
        var trained = CommandRunner.RunClient(["train", "--epochs", "1", "--sharded-checkpoint-every", "20", "--checkpoint-dir", "run"], _folder);
        Assert.True(trained.ExitCode == 0, trained.Error);
        string store = Path.Combine("run", "sharded");
        string optimizer = Assert.Single(Directory.GetDirectories(Path.Combine(_folder, store)));

        var listed = CommandRunner.RunClient(["checkpoints", "--store", store], _folder);
        var tooDeep = CommandRunner.RunClient(["checkpoints", "--store", optimizer], _folder);
        var missing = CommandRunner.RunClient(["export", "--store", store, "--checkpoint", "step-000000000999", "--out", "x.pt"], _folder);

        Assert.True(listed.ExitCode == 0, listed.Error);
        Assert.Contains($"{Path.GetFileName(optimizer)}  step-000000000020  step 20  Adam", listed.Output);
        Assert.Equal(0, tooDeep.ExitCode);
        Assert.Contains("No complete checkpoints in folder", tooDeep.Output);
        Assert.Contains($"'{optimizer}' contains step-* folders, so it looks like one optimizer's folder; give its parent folder as --store.", tooDeep.Output);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains(
            "No complete checkpoint 'step-000000000999' in folder", missing.Error);
        Assert.Contains("list them with 'client checkpoints' and the same --store or --azure-storage option.", missing.Error);
        Assert.False(File.Exists(Path.Combine(_folder, "x.pt")));
    }

    [Fact]
    public void TrainRejectsZeroWorkers()
    {
        var result = CommandRunner.RunClient(["train", "--workers", "0"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("error: Invalid --workers 0: expected at least 1.", result.Error);
    }

    [Theory]
    [InlineData("--shard-size", "3000000", "error: Invalid --shard-size 3000000: expected 1 to 2097152 elements.")]
    [InlineData("--name", "bad/name", "error: Invalid --name 'bad/name': use only ASCII letters, digits, '-', '_' and '.', such as 'run-42'.")]
    public void TrainRejectsBadValueBeforeCluster(string option, string value, string expected)
    {
        var result = CommandRunner.RunClient(["train", option, value, "--checkpoint-dir", "run"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Equal(expected, result.Error.Trim());

        // Nothing started: no cluster line and no checkpoint folder.
        Assert.DoesNotContain("silo", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.False(Directory.Exists(Path.Combine(_folder, "run")));
    }

    [Fact]
    public void ResumeWritesIntoResumedRunFolder()
    {
        var first = CommandRunner.RunClient(["train", "--epochs", "1", "--checkpoint-dir", "first"], _folder);
        var other = CommandRunner.RunClient(["train", "--epochs", "1", "--optimizer", "SGD", "--checkpoint-dir", "other"], _folder);
        Assert.True(first.ExitCode == 0, first.Error);
        Assert.True(other.ExitCode == 0, other.Error);

        var resumed = CommandRunner.RunClient(["train", "--epochs", "2", "--resume", "first"], _folder);
        var mixed = CommandRunner.RunClient(["train", "--epochs", "3", "--resume", "first", "--checkpoint-dir", "other"], _folder);

        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.Contains($"checkpoint {Path.Combine(_folder, "first", "epoch-0002")}", resumed.Output);
        Assert.True(Directory.Exists(Path.Combine(_folder, "first", "epoch-0002")));
        Assert.False(Directory.Exists(Path.Combine(_folder, "runs")));
        Assert.Equal(1, mixed.ExitCode);
        Assert.Contains("--checkpoint-dir 'other' already contains checkpoints of another run (epoch-0001).", mixed.Error);
        Assert.Single(Directory.GetDirectories(Path.Combine(_folder, "other"), "epoch-*"));
    }

    [Fact]
    public void ResumeWithoutWorkLeftStartsNothing()
    {
        var trained = CommandRunner.RunClient(["train", "--epochs", "2", "--checkpoint-dir", "run"], _folder);
        Assert.True(trained.ExitCode == 0, trained.Error);

        var resumed = CommandRunner.RunClient(["train", "--epochs", "2", "--resume", "run"], _folder);

        Assert.Equal(1, resumed.ExitCode);
        Assert.Equal("error: Nothing to train: the checkpoint is already at epoch 2 and --epochs is 2. Raise --epochs to continue.", resumed.Error.Trim());
        Assert.DoesNotContain("Embedded cluster", resumed.Output);
        Assert.Equal(string.Empty, resumed.Output.Trim());
    }

    [Fact]
    public void TrainRejectsRemoteGateway()
    {
        var result = CommandRunner.RunClient(["train", "--gateway", "192.0.2.1:30000"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("only loopback gateways (127.0.0.1, ::1, localhost) are supported", result.Error);
    }

    [Fact]
    public void TrainRejectsTlsWithEmbeddedCluster()
    {
        using var certificate = TestCertificates.Create("orleans-optim-cli-test");
        string path = TestCertificates.WritePfx(certificate, Path.Combine(_folder, "cluster.pfx"), password: null);

        var result = CommandRunner.RunClient(["train", "--tls-certificate", path], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("error: Invalid options: --tls-certificate needs --gateway or --azure-storage", result.Error);
    }

    [Fact]
    public void TrainRejectsTlsOptionsWithoutCertificate()
    {
        var ca = CommandRunner.RunClient(["train", "--gateway", "30000", "--tls-ca-certificate", "ca.pem"], _folder);
        var password = CommandRunner.RunClient(["train", "--gateway", "30000", "--tls-password-env", "SOME_VARIABLE"], _folder);

        Assert.Equal(1, ca.ExitCode);
        Assert.StartsWith("error: Invalid options: --tls-ca-certificate is given without --tls-certificate.", ca.Error);
        Assert.Equal(1, password.ExitCode);
        Assert.StartsWith("error: Invalid options: --tls-password-env is given without --tls-certificate.", password.Error);
    }

    [Fact]
    public void TrainRejectsUnusableCertificate()
    {
        using var certificate = TestCertificates.Create("orleans-optim-cli-test");
        string path = TestCertificates.WritePfx(certificate, Path.Combine(_folder, "cluster.pfx"), "cli-password-5");
        string[] arguments = ["train", "--gateway", "30000", "--tls-certificate", path];

        var unset = CommandRunner.RunClient([.. arguments, "--tls-password-env", "ORLEANS_OPTIM_TEST_UNSET"], _folder);
        var wrong = CommandRunner.RunClient(arguments, _folder, environment: new Dictionary<string, string> { ["ORLEANS_OPTIM_TLS_PASSWORD"] = "wrong-password-6" });
        var missing = CommandRunner.RunClient(["train", "--gateway", "30000", "--tls-certificate", "missing.pfx"], _folder);

        Assert.Equal(1, unset.ExitCode);
        Assert.StartsWith("error: Invalid --tls-password-env ORLEANS_OPTIM_TEST_UNSET: the environment variable ORLEANS_OPTIM_TEST_UNSET is not set.", unset.Error);
        Assert.Equal(1, wrong.ExitCode);
        Assert.StartsWith(
            $"error: Cannot open the PFX file --tls-certificate '{path}' with the password from the environment variable ORLEANS_OPTIM_TLS_PASSWORD:",
            wrong.Error);
        Assert.DoesNotContain("wrong-password-6", wrong.Error);
        Assert.Single(wrong.Error.Trim().Split('\n'));
        Assert.Equal(1, missing.ExitCode);
        Assert.StartsWith($"error: Invalid --tls-certificate 'missing.pfx': the file {Path.Combine(_folder, "missing.pfx")} was not found.", missing.Error);
    }

    [Fact]
    public void TrainRefusesUsedCheckpointDir()
    {
        var first = CommandRunner.RunClient(["train", "--epochs", "1", "--checkpoint-dir", "run"], _folder);
        var second = CommandRunner.RunClient(["train", "--epochs", "1", "--checkpoint-dir", "run"], _folder);
        var overwritten = CommandRunner.RunClient(["train", "--epochs", "1", "--checkpoint-dir", "run", "--overwrite"], _folder);

        Assert.Equal(0, first.ExitCode);
        Assert.Equal(1, second.ExitCode);
        Assert.Contains("--checkpoint-dir 'run' already contains checkpoints of another run (epoch-0001)", second.Error);
        Assert.Equal(0, overwritten.ExitCode);
    }

    [Fact]
    public void ResumeAppliesGivenLearningRate()
    {
        CommandRunner.RunClient(["train", "--epochs", "1", "--checkpoint-dir", "run"], _folder);

        var resumed = CommandRunner.RunClient(["train", "--epochs", "2", "--resume", "run", "--lr", "0.002", "--checkpoint-dir", "run"], _folder);

        Assert.Equal(0, resumed.ExitCode);
        Assert.Contains("param_groups[0]['lr'] = 0.002 (given on the command line)", resumed.Output);
        var state = StateDictFiles.ReadOptimizer(Path.Combine(_folder, "run", "epoch-0002", "optimizer.pt"));
        Assert.Equal(0.002, state.ParamGroups[0]["lr"]);
        var metadata = JsonNode.Parse(File.ReadAllText(Path.Combine(_folder, "run", "epoch-0002", "checkpoint.json")))!;
        Assert.Equal(0.002, metadata["settings"]!["lr"]!.GetValue<double>());
    }

    [Fact]
    public void ParseErrorPrintsErrorLine()
    {
        var result = CommandRunner.RunClient(["train", "--workers", "abc"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("error: Cannot parse argument 'abc' for option '--workers'", result.Error);
        Assert.Contains("Run 'client train --help' for the options.", result.Error);
    }

    [Fact]
    public void MisspeltCommandPointsToCommandList()
    {
        var result = CommandRunner.RunClient(["trian"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("error: Unrecognized command or argument 'trian'.", result.Error);
        Assert.Contains("Run 'client --help' for the commands.", result.Error);
    }

    [Fact]
    public void SubcommandParseErrorNamesWholeCommand()
    {
        var result = CommandRunner.RunClient(["bench", "kernel", "--elements", "x"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Run 'client bench kernel --help' for the options.", result.Error);
    }

    [Fact]
    public void UnreachableGatewayFailsWithinSeconds()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var result = CommandRunner.RunClient(["train", "--gateway", port.ToString()], _folder, TimeSpan.FromSeconds(60));

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith($"error: Cannot connect to the cluster 'orleans-optim' through 127.0.0.1 port(s) {port} within 15 s", result.Error);
        Assert.DoesNotContain("   at ", result.Error);
    }

    [Fact]
    public void ConformanceReportsEachOutcome()
    {
        string cases = Directory.CreateDirectory(Path.Combine(_folder, "cases")).FullName;
        CopyCase("sgd_momentum", cases);
        CopyCase("resume_adamw", cases);
        var unsupported = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.TorchFixtures, "adam_amsgrad.json")))!;
        unsupported["optimizer"] = "LBFGS";
        File.WriteAllText(Path.Combine(cases, "lbfgs_made_up.json"), unsupported.ToJsonString());

        var passing = CommandRunner.RunClient(["conformance", cases, "--out", "exported"], _folder);

        Assert.Equal(0, passing.ExitCode);
        Assert.Contains("PASS sgd_momentum", passing.Output);
        Assert.Contains("PASS resume_adamw", passing.Output);
        Assert.Contains("UNSUPPORTED lbfgs_made_up: optimizer LBFGS is not implemented", passing.Output);
        Assert.Contains("2 passed, 0 failed, 1 unsupported", passing.Output);
        Assert.True(File.Exists(Path.Combine(_folder, "exported", "sgd_momentum.pt")));

        var tampered = JsonNode.Parse(File.ReadAllText(Path.Combine(cases, "sgd_momentum.json")))!;
        var data = tampered["steps"]![2]!["params_after"]![1]!["data"]!.AsArray();
        data[0] = data[0]!.GetValue<double>() + 1e-3;
        File.WriteAllText(Path.Combine(cases, "sgd_momentum.json"), tampered.ToJsonString());

        var failing = CommandRunner.RunClient(["conformance", cases], _folder);

        Assert.Equal(1, failing.ExitCode);
        Assert.Contains("FAIL sgd_momentum: step 3, param 1: element 0: expected", failing.Output);
        Assert.Contains("1 passed, 1 failed, 1 unsupported", failing.Output);
    }

    [Fact]
    public void ConformanceExplainsFileThatIsNoCase()
    {
        string readme = Path.Combine(_folder, "README.md");
        File.WriteAllText(readme, "# Not a case\n");

        var result = CommandRunner.RunClient(["conformance", readme], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"FAIL README: cannot read {readme} as a reference case (", result.Output);
        Assert.Contains("a case is a JSON file in the format of tests/fixtures/torch-1.13/README.md.", result.Output);
    }

    [Fact]
    public void InspectPrintsOptimizerState()
    {
        var result = CommandRunner.RunClient(["inspect", Path.Combine(RepositoryPaths.TorchFixtures, "adam_amsgrad.pt")], _folder);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("optimizer state dict, 2 param group(s), state for 3 param(s)", result.Output);
        Assert.Contains("amsgrad          True", result.Output);
        Assert.Contains("max_exp_avg_sq   float32 [3, 5] (15 elements)", result.Output);
        Assert.Contains("step             float32 [] = 6.0", result.Output);
    }

    [Fact]
    public void InspectRejectsForbiddenGlobal()
    {
        string path = Path.Combine(_folder, "evil.pt");
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("state")
            .Global("os", "system").Str("echo pwned").Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.Reduce)
            .Op(PickleOpcodes.SetItem).Stop();
        File.WriteAllBytes(path, PtArchiveBuilder.PtFile(pickle));

        var result = CommandRunner.RunClient(["inspect", path], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Rejected global 'os.system'", result.Error);
        Assert.DoesNotContain("pwned", result.Output);
    }

    [Fact]
    public void InspectAdvisesStateDictForPickledModule()
    {
        string path = Path.Combine(_folder, "linear.pt");
        PythonTorch.Run("import sys, torch; torch.save(torch.nn.Linear(2, 2), sys.argv[1])", [path]);

        var result = CommandRunner.RunClient(["inspect", path], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith($"error: {path}: Rejected global 'torch.nn.modules.linear.Linear'", result.Error);
        Assert.Contains("Save model.state_dict() or optimizer.state_dict() instead, which this reader accepts.", result.Error);
    }

    [Fact]
    public void ExportToMissingFolderNamesFolder()
    {
        string missing = Path.Combine(_folder, "no-such-folder");
        string source = Path.Combine(RepositoryPaths.TorchFixtures, "adam_amsgrad.pt");
        var optimizer = Orleans.Optim.Formats.Pt.StateDictFiles.ReadOptimizer(source);

        var error = Assert.Throws<DirectoryNotFoundException>(() => Orleans.Optim.Formats.Pt.StateDictFiles.WriteOptimizer(Path.Combine(missing, "optimizer.pt"), optimizer));

        Assert.Equal(
            $"Cannot write '{Path.Combine(missing, "optimizer.pt")}': the folder '{missing}' does not exist. Create it first, or give a path in an existing folder.",
            error.Message);
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public void InspectRejectsTruncatedFile()
    {
        string path = Path.Combine(_folder, "truncated.pt");
        byte[] bytes = File.ReadAllBytes(Path.Combine(RepositoryPaths.TorchFixtures, "adam_amsgrad.pt"));
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);

        var result = CommandRunner.RunClient(["inspect", path], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("error: ", result.Error);
        Assert.Contains("truncated.pt", result.Error);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static void CopyCase(string name, string destination)
    {
        foreach (string suffix in new[] { ".json", ".pt", "_after_step3.json", "_after_step3.pt" })
        {
            string file = Path.Combine(RepositoryPaths.TorchFixtures, name + suffix);
            if (File.Exists(file))
            {
                File.Copy(file, Path.Combine(destination, name + suffix));
            }
        }
    }
}
