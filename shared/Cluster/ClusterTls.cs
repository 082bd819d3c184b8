using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;

namespace Training.Shared.Cluster;

/// <summary>
/// Mutual TLS for Akka.Remote: this node's certificate and key (PEM files) and the certificate authority every node of
/// the cluster must be signed by. Both sides of every connection present a certificate and check the other's against
/// the authority, so a node without one, or with one from another authority, never completes a handshake; the cluster
/// secret stays as a second check. <c>make certs</c> creates a development authority and node certificates.
/// </summary>
public sealed record ClusterTls(string CertificateFile, string KeyFile, string AuthorityFile)
{
    public const string CertificateVariable = "TRAINING_TLS_CERT";
    public const string KeyVariable = "TRAINING_TLS_KEY";
    public const string AuthorityVariable = "TRAINING_TLS_CA";

    /// <summary>TLS from the three settings (flags, else the environment); null when none is given. Some but not all
    /// of them, or a file that cannot be read, is an <see cref="ArgumentException"/> naming the setting.</summary>
    public static ClusterTls? FromSettings(string? certificate, string? key, string? authority, string flagPrefix = "--tls-")
    {
        certificate ??= Environment.GetEnvironmentVariable(CertificateVariable);
        key ??= Environment.GetEnvironmentVariable(KeyVariable);
        authority ??= Environment.GetEnvironmentVariable(AuthorityVariable);
        var given = new[] { certificate, key, authority }.Count(v => !string.IsNullOrEmpty(v));
        if (given == 0) return null;
        if (given < 3)
            throw new ArgumentException($"TLS needs all three of {flagPrefix}cert ({CertificateVariable}), {flagPrefix}key ({KeyVariable}) " +
                $"and {flagPrefix}ca ({AuthorityVariable}); missing: " + string.Join(", ", new[]
                {
                    (certificate, "cert"), (key, "key"), (authority, "ca"),
                }.Where(s => string.IsNullOrEmpty(s.Item1)).Select(s => flagPrefix + s.Item2)));
        var tls = new ClusterTls(Path.GetFullPath(certificate!), Path.GetFullPath(key!), Path.GetFullPath(authority!));
        tls.Load(); // a bad file is bad input now, not a failed handshake later
        return tls;
    }

    /// <summary>This node's certificate with its private key, and the authority's certificate.</summary>
    public (X509Certificate2 Node, X509Certificate2 Authority) Load()
    {
        X509Certificate2 node, authority;
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(CertificateFile, KeyFile);
            // A PKCS#12 round trip gives a key SslStream can use on every platform (a PEM-loaded key is ephemeral).
            node = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"cannot load the node certificate {CertificateFile} with key {KeyFile}: {e.Message}");
        }
        try
        {
            authority = X509CertificateLoader.LoadCertificateFromFile(AuthorityFile);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"cannot load the certificate authority {AuthorityFile}: {e.Message}");
        }
        if (!SignedBy(node, authority, out var why))
            throw new ArgumentException($"the node certificate {CertificateFile} is not signed by the authority {AuthorityFile}: {why}");
        return (node, authority);
    }

    /// <summary>The Akka.Remote setup: mutual authentication, each peer's chain checked against the authority only
    /// (not the machine's trust store), host names not checked (nodes are addressed by IP).</summary>
    public DotNettySslSetup Setup()
    {
        var (node, authority) = Load();
        CertificateValidationCallback validate = (certificate, _, peer, _, log) =>
        {
            if (certificate is null)
            {
                log.Warning("TLS: refused {0}: it presented no certificate", peer);
                return false;
            }
            if (SignedBy(certificate, authority, out var why)) return true;
            log.Warning("TLS: refused {0}: its certificate '{1}' is not signed by the cluster's authority ({2})", peer, certificate.Subject, why);
            return false;
        };
        return new DotNettySslSetup(node, suppressValidation: false, requireMutualAuthentication: true,
            validateCertificateHostname: false, customValidator: validate);
    }

    private static bool SignedBy(X509Certificate2 certificate, X509Certificate2 authority, out string why)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        var built = chain.Build(certificate);
        var root = chain.ChainElements.Count > 0 ? chain.ChainElements[^1].Certificate : null;
        if (built && root?.Thumbprint == authority.Thumbprint)
        {
            why = "";
            return true;
        }
        why = chain.ChainStatus.Length > 0 ? string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim())) : "another issuer";
        return false;
    }
}
