namespace MessageQueue.Tests.Docs;

/// <summary>Reads README.md and this test project's sources, so that README code can be checked against tests.</summary>
internal static class ReadmeText
{
    internal static string Readme => File.ReadAllText(Path.Combine(RepositoryRoot, "README.md"));

    internal static string TestSource(string fileName) =>
        File.ReadAllText(Path.Combine(RepositoryRoot, "tests", "MessageQueue.Tests", "Docs", fileName));

    internal static string Between(string text, string start, string end)
    {
        var i = text.IndexOf(start, StringComparison.Ordinal);
        Assert.That(i, Is.GreaterThanOrEqualTo(0), $"marker {start} missing");
        var j = text.IndexOf(end, i + start.Length, StringComparison.Ordinal);
        Assert.That(j, Is.GreaterThan(i), $"marker {end} missing");
        return text[(i + start.Length)..j];
    }

    /// <summary>The code lines of a block, trimmed, without blank lines or Markdown fences.</summary>
    internal static string[] Normalize(string block) =>
        [.. block.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith("```", StringComparison.Ordinal))];

    internal static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "MessageQueue.sln")))
            {
                dir = dir.Parent;
            }

            return dir?.FullName ?? throw new InvalidOperationException("MessageQueue.sln not found above the test directory.");
        }
    }
}
