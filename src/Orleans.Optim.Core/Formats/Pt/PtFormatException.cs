namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Error raised when a <c>.pt</c> file is invalid, unsupported, over a <see cref="PtReaderOptions"/> limit,
/// or unsafe to load.
/// </summary>
/// <remarks>
/// The message states what failed, on which value, and what to do next. <see cref="PtReader"/> raises only this
/// type for problems in the file's content, while I/O failures of the stream itself pass through unchanged.
/// </remarks>
public sealed class PtFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">Explanation for a person, naming the value and the fix.</param>
    /// <param name="entryName">Full name of the zip entry involved, such as <c>archive/data.pkl</c>, if any.</param>
    /// <param name="position">Byte offset in that entry, or in the file when <paramref name="entryName"/> is null, if known.</param>
    /// <param name="innerException">Underlying error, if any.</param>
    public PtFormatException(string message, string? entryName = null, long? position = null, Exception? innerException = null)
        : base(message, innerException)
    {
        EntryName = entryName;
        Position = position;
    }

    /// <summary>Full name of the zip entry involved, such as <c>archive/data.pkl</c>, or null when the error is about the whole file.</summary>
    public string? EntryName { get; }

    /// <summary>
    /// Byte offset of the problem: within <see cref="EntryName"/> when it is set (for <c>data.pkl</c>, the offset of
    /// the opcode), otherwise within the file. Null when no single offset applies.
    /// </summary>
    public long? Position { get; }
}
