using System.Text;
using System.Text.RegularExpressions;

namespace Training.Shared.Storage;

public enum BlobLocationKind { LocalFolder, Azure }

/// <summary>
/// Where a blob store lives, parsed from a storage URI: a plain path or <c>file:///abs/path</c> (a local folder, the
/// default) or <c>azure://ACCOUNT_OR_ALIAS/container[/prefix]</c>. A location never holds a credential: those are
/// read from the environment of the process that opens it (see <see cref="BlobStores"/>), so a location can be
/// logged, stored in run records and sent in messages.
/// </summary>
public sealed partial class BlobLocation
{
    public const string Expected = "expected a folder path, file:///absolute/path or azure://ACCOUNT/container[/prefix]";

    private BlobLocation(BlobLocationKind kind, string folder, string account, string container, string prefix)
    {
        Kind = kind;
        Folder = folder;
        Account = account;
        Container = container;
        Prefix = prefix;
    }

    public BlobLocationKind Kind { get; }

    /// <summary>The absolute folder of a local location; empty for Azure.</summary>
    public string Folder { get; }

    /// <summary>The account name or an alias for it (it names the credential variables); empty for local.</summary>
    public string Account { get; }

    public string Container { get; }

    /// <summary>Blob name prefix inside the container, without leading or trailing '/'; may be empty.</summary>
    public string Prefix { get; }

    public static BlobLocation Local(string folder) =>
        new(BlobLocationKind.LocalFolder, Path.GetFullPath(folder), "", "", "");

    public static BlobLocation Parse(string uri)
    {
        if (string.IsNullOrWhiteSpace(uri)) throw new ArgumentException($"empty storage location: {Expected}");
        var text = uri.Trim();
        var scheme = SchemePattern().Match(text);
        if (!scheme.Success) return Local(text);
        switch (scheme.Groups[1].Value.ToLowerInvariant())
        {
            case "file":
                return ParseFile(text);
            case "azure":
                return ParseAzure(text);
            default:
                throw new ArgumentException(
                    $"storage location '{Shown(text)}' has the unknown scheme '{scheme.Groups[1].Value}': {Expected}");
        }
    }

    private static BlobLocation ParseFile(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || !uri.IsFile || !(uri.Host is "" or "localhost")
            || uri.Query.Length > 0 || uri.Fragment.Length > 0)
            throw new ArgumentException($"storage location '{Shown(text)}' is not a local file URI: expected file:///absolute/path");
        return Local(uri.LocalPath);
    }

    private static BlobLocation ParseAzure(string text)
    {
        var rest = text["azure://".Length..];
        if (rest.IndexOfAny(['?', '#', '@']) >= 0)
            throw new ArgumentException($"storage location '{Shown(text)}' must not carry credentials or a query: give " +
                "azure://ACCOUNT/container[/prefix] and put the connection string or SAS in TRAINING_STORAGE_<ACCOUNT>_CONNECTION_STRING " +
                "or TRAINING_STORAGE_<ACCOUNT>_SAS (see docs/operations.md)");
        var parts = rest.Split('/', 3);
        var account = parts[0];
        if (!AccountPattern().IsMatch(account))
            throw new ArgumentException($"storage location '{text}' has no valid account or alias after azure:// " +
                "(letters, digits, '-' or '_', up to 63): expected azure://ACCOUNT/container[/prefix]");
        var container = parts.Length > 1 ? parts[1] : "";
        if (!ContainerPattern().IsMatch(container) || container.Contains("--"))
            throw new ArgumentException($"storage location '{text}' has no valid container name" +
                (container.Length == 0 ? "" : $" ('{container}')") +
                " (3-63 lowercase letters, digits and single hyphens, starting with a letter or digit): expected azure://ACCOUNT/container[/prefix]");
        var prefix = parts.Length > 2 ? parts[2].Trim('/') : "";
        if (prefix.Length > 0 && prefix.Split('/').Any(p => p is "" or "." or ".."))
            throw new ArgumentException($"storage location '{text}' has an invalid prefix '{prefix}' (empty, '.' or '..' segments): expected azure://ACCOUNT/container[/prefix]");
        return new BlobLocation(BlobLocationKind.Azure, "", account, container, prefix);
    }

    /// <summary>The URI for an error message: a query, fragment or user info may hold a secret, so it is cut out.</summary>
    private static string Shown(string text)
    {
        var query = text.IndexOfAny(['?', '#']);
        if (query >= 0) text = text[..query] + "…";
        var at = text.IndexOf('@');
        var authority = text.IndexOf("://", StringComparison.Ordinal) + 3;
        return at >= authority ? text[..authority] + "…" + text[at..] : text;
    }

    /// <summary>The location of a folder (or prefix) inside this one, e.g. a run's own folder.</summary>
    public BlobLocation Child(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Split('/').Any(p => p is "" or "." or ".."))
            throw new ArgumentException($"invalid storage folder name '{name}'");
        return Kind == BlobLocationKind.LocalFolder
            ? Local(Path.Combine(Folder, name))
            : new BlobLocation(Kind, "", Account, Container, Prefix.Length == 0 ? name : $"{Prefix}/{name}");
    }

    /// <summary>The environment variable prefix for this account's credentials: <c>TRAINING_STORAGE_&lt;NAME&gt;_</c>, the
    /// name upper-cased with every other character than letters and digits as '_'.</summary>
    public string CredentialVariablePrefix
    {
        get
        {
            var name = new StringBuilder();
            foreach (var c in Account) name.Append(char.IsAsciiLetterOrDigit(c) ? char.ToUpperInvariant(c) : '_');
            return $"TRAINING_STORAGE_{name}_";
        }
    }

    /// <summary>The canonical URI: the folder path, or azure://account/container/prefix.</summary>
    public override string ToString() => Kind == BlobLocationKind.LocalFolder
        ? Folder
        : $"azure://{Account}/{Container}{(Prefix.Length == 0 ? "" : "/" + Prefix)}";

    public override bool Equals(object? obj) => obj is BlobLocation other && other.ToString() == ToString();

    public override int GetHashCode() => ToString().GetHashCode(StringComparison.Ordinal);

    [GeneratedRegex(@"^([A-Za-z][A-Za-z0-9+.-]+)://")]
    private static partial Regex SchemePattern();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")]
    private static partial Regex AccountPattern();

    [GeneratedRegex(@"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")]
    private static partial Regex ContainerPattern();
}
