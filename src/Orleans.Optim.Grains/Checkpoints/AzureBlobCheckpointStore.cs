using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace Orleans.Optim.Checkpoints;

/// <summary>
/// A checkpoint store in an Azure Blob container: the store of silos that run on Azure Storage (Azurite locally),
/// so that every silo and the export tool see the same checkpoints.
/// </summary>
/// <remarks>A block blob becomes visible only when its upload commits, so readers never see a half-written file.</remarks>
public sealed class AzureBlobCheckpointStore : ICheckpointStore
{
    /// <summary>Default container of sharded checkpoints.</summary>
    public const string DefaultContainer = "orleans-optim-checkpoints";

    private readonly BlobContainerClient _container;
    private readonly Lazy<Task> _created;

    /// <summary>Creates the store over <paramref name="container"/> of the account in <paramref name="connectionString"/>.</summary>
    public AzureBlobCheckpointStore(string connectionString, string container = DefaultContainer)
    {
        _container = new BlobContainerClient(connectionString, container);
        _created = new Lazy<Task>(() => _container.CreateIfNotExistsAsync());
    }

    /// <inheritdoc/>
    public async Task WriteAsync(string path, Func<Stream, Task> write, CancellationToken cancellationToken = default)
    {
        await _created.Value;
        await using var stream = await _container.GetBlockBlobClient(path).OpenWriteAsync(overwrite: true, cancellationToken: cancellationToken);
        await write(stream);
    }

    /// <inheritdoc/>
    public async Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default)
    {
        try
        {
            return await _container.GetBlobClient(path).OpenReadAsync(new BlobOpenReadOptions(allowModifications: false), cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new FileNotFoundException($"Checkpoint file '{path}' not found in {Describe()}.", path, e);
        }
    }

    /// <inheritdoc/>
    public async Task<bool> ExistsAsync(string path, CancellationToken cancellationToken = default)
    {
        try
        {
            return (await _container.GetBlobClient(path).ExistsAsync(cancellationToken)).Value;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return false;
        }
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var names = new List<string>();
        try
        {
            await foreach (var blob in _container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix.Length == 0 ? null : prefix, cancellationToken))
            {
                names.Add(blob.Name);
            }
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return [];
        }

        names.Sort(StringComparer.Ordinal);
        return names;
    }

    /// <inheritdoc/>
    public async Task DeleteAsync(string path, CancellationToken cancellationToken = default)
    {
        try
        {
            await _container.GetBlobClient(path).DeleteIfExistsAsync(cancellationToken: cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
        }
    }

    /// <inheritdoc/>
    public string Describe() => $"Azure Blob container '{_container.Name}' at {_container.Uri.GetLeftPart(UriPartial.Authority)}";
}
