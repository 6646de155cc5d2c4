using System.Globalization;

namespace Orleans.Optim.Grains;

/// <summary>Optimizer names and the shard grain keys built from them.</summary>
public static class ShardKeys
{
    /// <summary>Maximum length of an optimizer name.</summary>
    public const int MaxNameLength = 128;

    /// <summary>Returns the key of shard <paramref name="index"/> of optimizer <paramref name="optimizer"/>.</summary>
    public static string For(string optimizer, int index) => optimizer + "/" + index.ToString(CultureInfo.InvariantCulture);

    /// <summary>Splits a shard key into the optimizer name and the shard index.</summary>
    /// <exception cref="FormatException">The key is not <c>{optimizer}/{index}</c>.</exception>
    public static (string Optimizer, int Index) Parse(string key)
    {
        int slash = key.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(key.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
        {
            throw new FormatException($"Invalid shard key '{key}': expected '<optimizer>/<shard index>'.");
        }

        return (key[..slash], index);
    }

    /// <summary>Returns why <paramref name="name"/> is not a valid optimizer name, or <see langword="null"/> when it is.</summary>
    public static string? Validate(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxNameLength)
        {
            return $"Invalid optimizer name '{name}': expected 1 to {MaxNameLength} characters.";
        }

        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                return $"Invalid optimizer name '{name}': use only ASCII letters, digits, '-', '_' and '.', such as 'run-42'.";
            }
        }

        return null;
    }
}
