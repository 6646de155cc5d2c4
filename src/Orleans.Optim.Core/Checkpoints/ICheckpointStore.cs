namespace Orleans.Optim.Checkpoints;

/// <summary>
/// Where sharded checkpoints live: a flat namespace of paths such as <c>run-42/ckpt-000120/shard-000003.bin</c>,
/// backed by a local folder or by Azure Blob storage.
/// </summary>
/// <remarks>A write is atomic for readers: a path either holds the whole new content or does not exist yet.</remarks>
public interface ICheckpointStore
{
    /// <summary>Writes the content that <paramref name="write"/> produces to <paramref name="path"/>, replacing any old content.</summary>
    Task WriteAsync(string path, Func<Stream, Task> write, CancellationToken cancellationToken = default);

    /// <summary>Opens <paramref name="path"/> for reading.</summary>
    /// <exception cref="FileNotFoundException">The path does not exist.</exception>
    Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Returns whether <paramref name="path"/> exists.</summary>
    Task<bool> ExistsAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Lists the paths that start with <paramref name="prefix"/>.</summary>
    Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Deletes <paramref name="path"/> if it exists.</summary>
    Task DeleteAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Describes the store for messages, such as the folder or the container.</summary>
    string Describe();
}
