namespace Orleans.Optim.Checkpoints;

/// <summary>
/// A checkpoint store in a local folder: the embedded cluster's store, and the store of silos that share one
/// machine's disk.
/// </summary>
public sealed class LocalFolderCheckpointStore : ICheckpointStore
{
    private readonly string _root;

    /// <summary>Creates the store in <paramref name="root"/>, which is created when needed.</summary>
    public LocalFolderCheckpointStore(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        _root = Path.GetFullPath(root);
    }

    /// <inheritdoc/>
    public async Task WriteAsync(string path, Func<Stream, Task> write, CancellationToken cancellationToken = default)
    {
        string target = Resolve(path);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);

        // Written beside the target and renamed into place, so readers never see a half-written file.
        string temporary = target + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            await using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                await write(stream);
                await stream.FlushAsync(cancellationToken);
            }

            File.Move(temporary, target, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }

    /// <inheritdoc/>
    public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default)
    {
        string file = Resolve(path);
        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"Checkpoint file '{path}' not found in {_root}.", file);
        }

        return Task.FromResult<Stream>(new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true));
    }

    /// <inheritdoc/>
    public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken = default) => Task.FromResult(File.Exists(Resolve(path)));

    /// <inheritdoc/>
    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        if (!Directory.Exists(_root))
        {
            return Task.FromResult<IReadOnlyList<string>>([]);
        }

        var paths = Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(_root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(p => p.StartsWith(prefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        return Task.FromResult<IReadOnlyList<string>>(paths);
    }

    /// <inheritdoc/>
    public Task DeleteAsync(string path, CancellationToken cancellationToken = default)
    {
        string file = Resolve(path);
        if (File.Exists(file))
        {
            File.Delete(file);
        }

        // Remove folders that the deletion left empty, up to the root.
        for (var folder = Path.GetDirectoryName(file); folder is not null && folder.Length > _root.Length; folder = Path.GetDirectoryName(folder))
        {
            if (!Directory.Exists(folder) || Directory.EnumerateFileSystemEntries(folder).Any())
            {
                break;
            }

            Directory.Delete(folder);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public string Describe() => $"folder {_root}";

    private string Resolve(string path)
    {
        if (path.Length == 0 || path.StartsWith('/') || path.Split('/').Any(part => part is "" or "." or ".."))
        {
            throw new ArgumentException($"Invalid checkpoint path '{path}': expected relative segments separated by '/'.", nameof(path));
        }

        return Path.Combine(_root, path.Replace('/', Path.DirectorySeparatorChar));
    }
}
