using System.Globalization;
using System.Text;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// The records of a <c>.pt</c> zip archive, after checking the layout rules that torch 1.13's reader enforces:
/// every entry inside one folder, and a readable <c>version</c> record.
/// </summary>
internal sealed class PtArchive
{
    /// <summary>Lowest and highest file format version that torch 1.13 reads. torch.save writes 3.</summary>
    private const int MinVersion = 1;
    private const int MaxVersion = 10;

    private const int MaxSmallRecordBytes = 64;

    private readonly Dictionary<string, ZipEntryInfo> _records;

    private PtArchive(ZipStoreReader zip, string folder, Dictionary<string, ZipEntryInfo> records)
    {
        Zip = zip;
        Folder = folder;
        _records = records;
    }

    /// <summary>The underlying zip reader.</summary>
    public ZipStoreReader Zip { get; }

    /// <summary>Name of the folder that contains every entry, such as <c>archive</c>.</summary>
    public string Folder { get; }

    /// <summary>Reads and checks the layout of the archive that starts at the current position of <paramref name="stream"/>.</summary>
    /// <exception cref="PtFormatException">The stream is not a valid <c>.pt</c> archive.</exception>
    public static PtArchive Open(Stream stream)
    {
        var zip = ZipStoreReader.Open(stream);
        if (zip.Entries.Count == 0)
        {
            throw new PtFormatException(
                "The zip archive has no entries. A .pt file has data.pkl, data/<key> and version inside one folder. Pass a file written by torch.save.");
        }

        string? folder = null;
        var records = new Dictionary<string, ZipEntryInfo>(StringComparer.Ordinal);
        foreach (var entry in zip.Entries)
        {
            int slash = entry.Name.IndexOf('/');
            if (slash <= 0)
            {
                throw new PtFormatException(
                    $"Entry '{entry.Name}' is at the root of the zip archive, but torch requires every entry inside one folder such as 'archive/'. " +
                    "Re-save the object with torch.save instead of building the zip by hand.",
                    entry.Name);
            }

            string entryFolder = entry.Name[..slash];
            folder ??= entryFolder;
            if (entryFolder != folder)
            {
                throw new PtFormatException(
                    $"Entry '{entry.Name}' is in folder '{entryFolder}', but the first entry is in folder '{folder}'. torch requires one folder for all entries. " +
                    "Re-save the object with torch.save instead of building the zip by hand.",
                    entry.Name);
            }

            string record = entry.Name[(slash + 1)..];
            if (record.Length > 0 && !record.EndsWith('/'))
            {
                records.Add(record, entry);
            }
        }

        var archive = new PtArchive(zip, folder!, records);
        archive.CheckVersion();
        archive.CheckByteOrder();
        return archive;
    }

    /// <summary>Returns the full entry name of a record, such as <c>archive/data/0</c> for <c>data/0</c>.</summary>
    public string FullName(string record) => Folder + "/" + record;

    /// <summary>Finds a record by its name inside the folder, such as <c>data/0</c>.</summary>
    public bool TryGetRecord(string record, out ZipEntryInfo entry) => _records.TryGetValue(record, out entry!);

    private void CheckVersion()
    {
        string text = ReadSmallRecord("version", required: true)!;
        string trimmed = text.Trim();
        if (!int.TryParse(trimmed, NumberStyles.None, CultureInfo.InvariantCulture, out int version)
            || version < MinVersion
            || version > MaxVersion)
        {
            throw new PtFormatException(
                $"Record '{FullName("version")}' contains '{trimmed}', but torch 1.13 reads only file format versions {MinVersion} to {MaxVersion} " +
                "(torch.save writes 3). Re-save the object with torch.save.",
                FullName("version"));
        }
    }

    private void CheckByteOrder()
    {
        string? text = ReadSmallRecord("byteorder", required: false);
        if (text is not null && text.Trim() != "little")
        {
            throw new PtFormatException(
                $"Record '{FullName("byteorder")}' contains '{text.Trim()}', but only little-endian tensor data is supported. " +
                "Re-save the object with torch.save on a little-endian machine.",
                FullName("byteorder"));
        }
    }

    private string? ReadSmallRecord(string record, bool required)
    {
        if (!TryGetRecord(record, out var entry))
        {
            if (!required)
            {
                return null;
            }

            throw new PtFormatException(
                $"The zip archive has no '{FullName(record)}' record, which torch requires in every .pt file. " +
                "The file is incomplete or was not written by torch.save. Re-save it with torch.save.",
                FullName(record));
        }

        if (entry.Size > MaxSmallRecordBytes)
        {
            throw new PtFormatException(
                $"Record '{entry.Name}' has {entry.Size} bytes, but it should contain a short text such as '3'. The file is corrupt. Re-create it.",
                entry.Name);
        }

        byte[] bytes = Zip.ReadAll(entry);
        if (bytes.Any(b => b >= 0x80))
        {
            throw new PtFormatException(
                $"Record '{entry.Name}' contains non-ASCII bytes, but it should contain a short text such as '3'. The file is corrupt. Re-create it.",
                entry.Name);
        }

        return Encoding.ASCII.GetString(bytes);
    }
}
