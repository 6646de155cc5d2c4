namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Settings of <see cref="PtWriter"/>.
/// </summary>
public sealed class PtWriterOptions
{
    /// <summary>Maximum length of <see cref="ArchiveName"/>, far below the 65,535-byte limit of zip entry names.</summary>
    private const int MaxArchiveNameLength = 1000;

    private string _archiveName = "archive";

    /// <summary>Options with the default settings.</summary>
    public static PtWriterOptions Default { get; } = new();

    /// <summary>
    /// Name of the folder that contains every zip entry. Default: <c>archive</c>. torch names it after the file
    /// (<c>model</c> for <c>model.pt</c>) but loads any single folder name.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The name is empty, longer than 1000 characters, or contains a slash, a backslash or a control character.
    /// </exception>
    public string ArchiveName
    {
        get => _archiveName;
        init
        {
            ArgumentException.ThrowIfNullOrEmpty(value);
            if (value.Any(c => c is '/' or '\\' || char.IsControl(c)) || value.Length > MaxArchiveNameLength)
            {
                throw new ArgumentException(
                    $"Invalid archive name '{value}': it must not contain '/', '\\' or control characters, and it may have at most " +
                    $"{MaxArchiveNameLength} characters. Use a plain name such as 'archive'.",
                    nameof(value));
            }

            _archiveName = value;
        }
    }

    /// <summary>
    /// Whether <see cref="PtWriter.WriteFile"/> flushes the file to the disk (<c>fsync</c>) before it replaces the
    /// target, so that a crash after it returns cannot leave a truncated file. Default: <see langword="true"/>.
    /// torch's <c>torch.save</c> does not flush.
    /// </summary>
    public bool FlushToDisk { get; init; } = true;

    /// <summary>
    /// Whether to write zip64 records even when no size or offset needs them, so that tests can run the zip64 path
    /// on small files.
    /// </summary>
    internal bool ForceZip64 { get; init; }
}
