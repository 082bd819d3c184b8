using Azure.Identity;
using Azure.Storage.Blobs;

namespace Training.Shared.Storage;

/// <summary>
/// Opens the <see cref="IBlobStore"/> a <see cref="BlobLocation"/> names. For <c>azure://NAME/...</c> the credential comes
/// from this process's environment, first match wins:
/// <list type="number">
/// <item><c>TRAINING_STORAGE_NAME_CONNECTION_STRING</c> (or <c>..._CONNECTION_STRING_FILE</c>, a file holding it);</item>
/// <item><c>TRAINING_STORAGE_NAME_SAS</c> (or <c>..._SAS_FILE</c>): a SAS URL, or a SAS token with <c>..._ENDPOINT</c>
/// the account URL (https://ACCOUNT.blob.core.windows.net);</item>
/// <item><c>TRAINING_STORAGE_NAME_ENDPOINT</c> alone: Azure AD through DefaultAzureCredential (managed identity,
/// workload identity, environment, Azure CLI).</item>
/// </list>
/// Credentials are never part of the location, the store's <see cref="IBlobStore.Location"/> or an error message.
/// </summary>
public static class BlobStores
{
    /// <param name="environment">Reads an environment variable; the process environment when null.</param>
    public static IBlobStore Open(BlobLocation location, Func<string, string?>? environment = null, AzureBlobStoreOptions? options = null)
    {
        if (location.Kind == BlobLocationKind.LocalFolder) return new LocalFolderBlobStore(location.Folder);
        environment ??= Environment.GetEnvironmentVariable;
        options ??= AzureBlobStoreOptions.Default;
        var (container, secrets) = AzureContainer(location, environment, options);
        return new AzureBlobStore(container, location.Prefix, options, location.ToString(), secrets);
    }

    public static IBlobStore Open(string uri, Func<string, string?>? environment = null, AzureBlobStoreOptions? options = null) =>
        Open(BlobLocation.Parse(uri), environment, options);

    private static (BlobContainerClient Container, IReadOnlyList<string> Secrets) AzureContainer(
        BlobLocation location, Func<string, string?> environment, AzureBlobStoreOptions options)
    {
        var prefix = location.CredentialVariablePrefix;
        var clientOptions = options.ClientOptions();
        var endpoint = Setting(environment, prefix + "ENDPOINT", fileVariant: false);

        if (Setting(environment, prefix + "CONNECTION_STRING", fileVariant: true) is { } connectionString)
        {
            var secrets = new List<string> { connectionString };
            foreach (var part in connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var equals = part.IndexOf('=');
                if (equals <= 0) continue;
                var key = part[..equals];
                if (key.Equals("AccountKey", StringComparison.OrdinalIgnoreCase) || key.Equals("SharedAccessSignature", StringComparison.OrdinalIgnoreCase))
                    secrets.Add(part[(equals + 1)..]);
            }
            try
            {
                return (new BlobServiceClient(connectionString, clientOptions).GetBlobContainerClient(location.Container), secrets);
            }
            catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
            {
                // The parser's message may quote the string: say which variable is wrong, not what it holds.
                throw new ArgumentException($"{prefix}CONNECTION_STRING(_FILE) for {location} is not a valid Azure Storage connection string");
            }
        }

        if (Setting(environment, prefix + "SAS", fileVariant: true) is { } sas)
        {
            var secrets = new List<string> { sas };
            Uri containerUri;
            if (sas.StartsWith("https://", StringComparison.OrdinalIgnoreCase) || sas.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
            {
                if (!Uri.TryCreate(sas, UriKind.Absolute, out var sasUri) || sasUri.Query.Length <= 1)
                    throw new ArgumentException($"{prefix}SAS(_FILE) for {location} is not a SAS URL (https://ACCOUNT.blob.core.windows.net/?sv=...)");
                secrets.Add(sasUri.Query.TrimStart('?'));
                var path = sasUri.AbsolutePath.TrimEnd('/');
                // An account SAS URL gets the container appended; a container SAS URL already names it.
                var withContainer = path.EndsWith("/" + location.Container, StringComparison.Ordinal) ? path : $"{path}/{location.Container}";
                containerUri = new UriBuilder(sasUri) { Path = withContainer }.Uri;
            }
            else
            {
                var token = sas.TrimStart('?');
                secrets.Add(token);
                if (endpoint is null)
                    throw new ArgumentException($"{prefix}SAS for {location} is a SAS token: set {prefix}ENDPOINT to the account URL " +
                        "(https://ACCOUNT.blob.core.windows.net), or give a whole SAS URL");
                containerUri = new UriBuilder(AccountUri(endpoint, prefix, location)) { Query = token }.Uri;
                containerUri = new UriBuilder(containerUri) { Path = $"{containerUri.AbsolutePath.TrimEnd('/')}/{location.Container}" }.Uri;
            }
            foreach (var pair in containerUri.Query.TrimStart('?').Split('&'))
                if (pair.StartsWith("sig=", StringComparison.OrdinalIgnoreCase)) secrets.Add(pair[4..]);
            return (new BlobContainerClient(containerUri, clientOptions), secrets);
        }

        if (endpoint is not null)
        {
            var containerUri = new UriBuilder(AccountUri(endpoint, prefix, location)).Uri;
            containerUri = new UriBuilder(containerUri) { Path = $"{containerUri.AbsolutePath.TrimEnd('/')}/{location.Container}" }.Uri;
            return (new BlobContainerClient(containerUri, new DefaultAzureCredential(), clientOptions), []);
        }

        throw new ArgumentException($"no credentials for {location}: set {prefix}CONNECTION_STRING (or {prefix}CONNECTION_STRING_FILE), " +
            $"or {prefix}SAS (or {prefix}SAS_FILE) with {prefix}ENDPOINT, or {prefix}ENDPOINT alone for Azure AD (DefaultAzureCredential) " +
            "in the environment of the process that opens the store (the worker)");
    }

    private static Uri AccountUri(string endpoint, string prefix, BlobLocation location)
    {
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || uri.Query.Length > 0)
            throw new ArgumentException($"{prefix}ENDPOINT for {location} is not an account URL like https://ACCOUNT.blob.core.windows.net " +
                "(a SAS goes in " + prefix + "SAS)");
        return uri;
    }

    /// <summary>A variable's value, or the trimmed content of the file its <c>_FILE</c> twin names; null when neither is set.</summary>
    private static string? Setting(Func<string, string?> environment, string name, bool fileVariant)
    {
        if (environment(name) is { Length: > 0 } value) return value.Trim();
        if (!fileVariant || environment(name + "_FILE") is not { Length: > 0 } file) return null;
        try
        {
            return File.ReadAllText(file).Trim() is { Length: > 0 } content ? content
                : throw new ArgumentException($"{name}_FILE names an empty file ({file})");
        }
        catch (IOException e)
        {
            throw new ArgumentException($"cannot read {name}_FILE ({file}): {e.Message}");
        }
    }
}
