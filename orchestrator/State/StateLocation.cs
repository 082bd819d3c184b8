using Npgsql;

namespace Training.Orchestrator.State;

public enum StateBackend { Sqlite, Postgres }

/// <summary>
/// The <c>--state</c> option: <c>sqlite:PATH</c> (a database file, created with its folder), or
/// <c>postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]</c> (the password may instead come from $PGPASSWORD).
/// Without it, <c>sqlite:RUNS/state.db</c> in the runs folder.
/// </summary>
public sealed record StateLocation(StateBackend Backend, string Target)
{
    public static StateLocation Default(string runsRoot) => new(StateBackend.Sqlite, Path.Combine(runsRoot, "state.db"));

    /// <exception cref="ArgumentException">Not one of the two forms, with what was expected.</exception>
    public static StateLocation Parse(string text)
    {
        const string expected = "expected sqlite:PATH or postgres://USER@HOST:PORT/DATABASE";
        if (text.StartsWith("sqlite:", StringComparison.Ordinal))
        {
            var path = text["sqlite:".Length..];
            if (path.Length == 0) throw new ArgumentException($"--state '{text}': the sqlite path is empty ({expected})");
            return new(StateBackend.Sqlite, Path.GetFullPath(path));
        }
        if (text.StartsWith("postgres://", StringComparison.Ordinal) || text.StartsWith("postgresql://", StringComparison.Ordinal))
        {
            ConnectionString(text); // validates
            return new(StateBackend.Postgres, text);
        }
        throw new ArgumentException($"--state '{Redacted(text)}': {expected}");
    }

    /// <summary>The Npgsql connection string for a postgres:// URI.</summary>
    internal static string ConnectionString(string uri)
    {
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || string.IsNullOrEmpty(parsed.Host))
            throw new ArgumentException($"--state '{Redacted(uri)}': not a URI of the form postgres://USER@HOST:PORT/DATABASE");
        var database = parsed.AbsolutePath.Trim('/');
        if (database.Length == 0 || database.Contains('/'))
            throw new ArgumentException($"--state '{Redacted(uri)}': name one database after the host (postgres://USER@HOST:PORT/DATABASE)");
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = parsed.Host,
            Port = parsed.IsDefaultPort || parsed.Port < 0 ? 5432 : parsed.Port,
            Database = Uri.UnescapeDataString(database),
            // Short, so a database that is down is an error in seconds rather than a hang.
            Timeout = 10,
        };
        if (parsed.UserInfo.Length > 0)
        {
            var parts = parsed.UserInfo.Split(':', 2);
            builder.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length == 2) builder.Password = Uri.UnescapeDataString(parts[1]);
        }
        foreach (var pair in parsed.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(kv[0]);
            var value = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
            try
            {
                builder[key switch { "sslmode" => "SSL Mode", "application_name" => "Application Name", _ => key }] = value;
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"--state '{Redacted(uri)}': option '{key}': {e.Message}");
            }
        }
        return builder.ConnectionString;
    }

    /// <summary>The URI with any password replaced, for messages and logs.</summary>
    public static string Redacted(string text)
    {
        if (Uri.TryCreate(text, UriKind.Absolute, out var parsed))
        {
            if (!parsed.UserInfo.Contains(':')) return text;
            var user = parsed.UserInfo.Split(':', 2)[0];
            var replaced = text.Replace(parsed.UserInfo + "@", user + ":***@", StringComparison.Ordinal);
            if (replaced != text) return replaced;
        }
        // Not a URI (a bad port), or one whose user info Uri gives back escaped (a space, a '%'): hide what follows
        // USER: up to the host's '@' as written.
        return System.Text.RegularExpressions.Regex.Replace(text, "^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):[^?#]*@", "$1:***@");
    }

    public override string ToString() => Backend == StateBackend.Sqlite ? "sqlite:" + Target : Redacted(Target);

    public IRunStateStore Open() => SqlRunStateStore.Open(this);
}
