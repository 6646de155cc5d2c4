using System.CommandLine;
using Orleans.Optim.Checkpoints;

namespace Orleans.Optim.Cli.Commands;

/// <summary>
/// <c>client export</c> and <c>client checkpoints</c>: read sharded checkpoints straight from their store, without a
/// running cluster.
/// </summary>
public static class ExportCommand
{
    /// <summary>Creates <c>client export</c>.</summary>
    public static Command CreateExport()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint id, such as step-000000000120 (see 'client checkpoints').", Required = true };
        var optimizer = new Option<string?>("--optimizer") { Description = "Name of the optimizer that wrote it; needed only when several optimizers have this id." };
        var (store, azureStorage, container) = StoreOptions();
        var output = new Option<string>("--out") { Description = "Optimizer state dict .pt to write (torch.optim's load_state_dict accepts it).", Required = true };
        var modelOutput = new Option<string?>("--model-out") { Description = "Also write the parameters as a model state dict .pt (needs named parameters)." };
        var command = new Command("export", "Build the consolidated torch .pt files from a sharded checkpoint, streaming, without a cluster.")
        {
            checkpoint, optimizer, store, azureStorage, container, output, modelOutput,
        };
        command.SetAction((parseResult, cancellationToken) =>
        {
            var checkpointStore = OpenStore(parseResult, store, azureStorage, container);
            return ReadStoreAsync(checkpointStore, async () =>
            {
                string id = parseResult.GetValue(checkpoint)!;
                string name = parseResult.GetValue(optimizer) ?? await FindOptimizerAsync(checkpointStore, id, cancellationToken);
                var exporter = await CheckpointExporter.OpenAsync(checkpointStore, name, id, cancellationToken);

                string path = parseResult.GetValue(output)!;
                exporter.WriteOptimizer(path);
                Console.WriteLine($"optimizer state of '{name}' at step {exporter.Manifest.Step}: {Path.GetFullPath(path)}");
                if (parseResult.GetValue(modelOutput) is { } modelPath)
                {
                    exporter.WriteModel(modelPath);
                    Console.WriteLine($"model parameters: {Path.GetFullPath(modelPath)}");
                }

                return 0;
            });
        });
        return command;
    }

    /// <summary>Creates <c>client checkpoints</c>.</summary>
    public static Command CreateList()
    {
        var optimizer = new Option<string?>("--optimizer") { Description = "List only this optimizer's checkpoints." };
        var (store, azureStorage, container) = StoreOptions();
        var command = new Command("checkpoints", "List the complete sharded checkpoints (those with a manifest) in a checkpoint store.")
        {
            optimizer, store, azureStorage, container,
        };
        command.SetAction((parseResult, cancellationToken) =>
        {
            var checkpointStore = OpenStore(parseResult, store, azureStorage, container);
            return ReadStoreAsync(checkpointStore, async () =>
            {
                var names = parseResult.GetValue(optimizer) is { } one
                    ? [one]
                    : (await checkpointStore.ListAsync(string.Empty, cancellationToken)).Select(p => p.Split('/')[0]).Distinct().Order(StringComparer.Ordinal).ToList();
                int count = 0;
                foreach (string name in names)
                {
                    foreach (string id in await CheckpointManifest.ListAsync(checkpointStore, name, cancellationToken))
                    {
                        var manifest = await CheckpointManifest.ReadAsync(checkpointStore, name, id, cancellationToken);
                        Console.WriteLine($"{name}  {id}  step {manifest.Step}  {manifest.Algorithm}  {manifest.Shards.Length} shards  {manifest.Shards.Sum(s => s.Bytes):N0} bytes  {manifest.CreatedUtc}");
                        count++;
                    }
                }

                if (count == 0)
                {
                    Console.WriteLine($"No complete checkpoints in {checkpointStore.Describe()}.");
                    string folder = parseResult.GetValue(store)!;
                    if (parseResult.GetValue(azureStorage) is null && Directory.Exists(folder) && Directory.EnumerateDirectories(folder, "step-*").Any())
                    {
                        // The store contains one folder per optimizer, and each of those its step-* checkpoints.
                        Console.WriteLine(
                            $"'{folder}' contains step-* folders, so it looks like one optimizer's folder; give its parent folder as --store.");
                    }
                }

                return 0;
            });
        });
        return command;
    }

    private static (Option<string> Store, Option<string?> AzureStorage, Option<string> Container) StoreOptions() =>
    (
        new("--store")
        {
            Description = "Folder of the checkpoint store (the silos' Optim:Silo:Checkpoints:Path).",
            DefaultValueFactory = _ => "checkpoints",
        },
        new("--azure-storage")
        {
            Description = "Connection string of the storage account of silos with Clustering=AzureStorage, whose checkpoints are blobs; replaces --store.",
            HelpName = "CONNECTION_STRING",
        },
        new("--container")
        {
            Description = "Blob container of the checkpoints with --azure-storage (the silos' Optim:Silo:Checkpoints:AzureContainer).",
            DefaultValueFactory = _ => AzureBlobCheckpointStore.DefaultContainer,
        }
    );

    private static ICheckpointStore OpenStore(ParseResult parseResult, Option<string> store, Option<string?> azureStorage, Option<string> container)
    {
        string folder = parseResult.GetValue(store)!;
        if (parseResult.GetValue(azureStorage) is { } connectionString)
        {
            if (parseResult.GetResult(store) is { Implicit: false })
            {
                throw new ArgumentException("Give either --store (a folder) or --azure-storage (blobs), not both.");
            }

            if (string.IsNullOrWhiteSpace(connectionString))
            {
                throw new ArgumentException("The --azure-storage connection string is empty; give the one the silos use (Optim:Silo:AzureStorageConnectionString).");
            }

            try
            {
                return new AzureBlobCheckpointStore(connectionString, parseResult.GetValue(container)!);
            }
            catch (FormatException e)
            {
                throw new ArgumentException($"Invalid --azure-storage connection string: {e.Message} Give the one the silos use (Optim:Silo:AzureStorageConnectionString).", e);
            }
        }

        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"Checkpoint store folder '{folder}' not found; give the silos' Optim:Silo:Checkpoints:Path with --store.");
        }

        return new LocalFolderCheckpointStore(folder);
    }

    /// <summary>Runs <paramref name="read"/>, turning a storage account that cannot be reached into one clear error.</summary>
    private static async Task<int> ReadStoreAsync(ICheckpointStore store, Func<Task<int>> read)
    {
        try
        {
            return await read();
        }
        catch (Exception e) when (e is Azure.RequestFailedException || e is AggregateException { InnerException: Azure.RequestFailedException })
        {
            string reason = (e.InnerException ?? e).Message.Split('\n')[0].Trim();
            throw new CommandException(
                $"Cannot read the checkpoints in {store.Describe()}: {reason}. Check the connection string and that the storage account is running (scripts/azurite.sh start for Azurite).",
                e);
        }
    }

    private static async Task<string> FindOptimizerAsync(ICheckpointStore store, string checkpoint, CancellationToken cancellationToken)
    {
        var owners = (await store.ListAsync(string.Empty, cancellationToken))
            .Where(p => p.EndsWith($"/{checkpoint}/{CheckpointManifest.FileName}", StringComparison.Ordinal))
            .Select(p => p.Split('/')[0])
            .ToList();
        return owners.Count switch
        {
            1 => owners[0],
            0 => throw new FileNotFoundException($"No complete checkpoint '{checkpoint}' in {store.Describe()}; list them with 'client checkpoints' and the same --store or --azure-storage option."),
            _ => throw new ArgumentException($"Checkpoint '{checkpoint}' exists for several optimizers ({string.Join(", ", owners)}); choose one with --optimizer."),
        };
    }
}
