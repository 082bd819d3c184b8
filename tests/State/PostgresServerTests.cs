using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.State;

/// <summary>Where the test server's binaries are looked for, on made-up layouts (the real one is whatever this machine has).</summary>
public class PostgresServerTests
{
    private static void Tools(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var tool in new[] { "initdb", "pg_ctl", "postgres" }) File.WriteAllText(Path.Combine(dir, tool), "");
    }

    [Test]
    public void FindBinaries_NothingInstalled_SaysToRunMakePrerequisites()
    {
        using var dir = new TempDirectory();
        Directory.CreateDirectory(dir.Combine("empty-bin"));
        Tools(dir.Combine("lib", "15", "incomplete"));
        var error = Assert.Throws<InvalidOperationException>(() => PostgresServer.FindBinaries(dir.Combine("empty-bin"), dir.Combine("lib")));
        Assert.That(error!.Message, Does.Contain("make prerequisites").And.Contain("apt-get install postgresql"));
    }

    [Test]
    public void FindBinaries_DebianFolders_TakesTheNewestVersion_AndPathFirst()
    {
        using var dir = new TempDirectory();
        Tools(dir.Combine("lib", "9.6", "bin"));
        Tools(dir.Combine("lib", "15", "bin"));
        Tools(dir.Combine("lib", "13", "bin"));
        Directory.CreateDirectory(dir.Combine("lib", "17", "bin")); // a version without its server: not a candidate
        Assert.That(PostgresServer.FindBinaries("", dir.Combine("lib")), Is.EqualTo(dir.Combine("lib", "15", "bin")));
        Tools(dir.Combine("path-bin"));
        Assert.That(PostgresServer.FindBinaries(dir.Combine("nope") + ":" + dir.Combine("path-bin"), dir.Combine("lib")), Is.EqualTo(dir.Combine("path-bin")));
    }
}
