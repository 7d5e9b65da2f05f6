using System.Diagnostics;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Runs the repository's node scripts (<c>scripts/rabbitmq-node.sh</c>, <c>scripts/rabbitmq-cluster.sh</c>)
/// from a test: restarts, kills, <c>rabbitmqctl</c>.</summary>
internal static class NodeScripts
{
    /// <summary>Runs <c>scripts/<paramref name="script"/></c> with <paramref name="args"/>, fails the test (with its error
    /// output) when it exits non-zero, and returns its output.</summary>
    internal static async Task<string> RunAsync(string script, params string[] args)
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "scripts", script)))
        {
            root = Path.GetDirectoryName(root.TrimEnd(Path.DirectorySeparatorChar)) ?? throw new InvalidOperationException($"scripts/{script} not found above the test's folder");
        }

        var start = new ProcessStartInfo("bash") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(Path.Combine(root, "scripts", script));
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.That(process.ExitCode, Is.Zero, () => $"{script} {string.Join(' ', args)}: {error.Result}");
        return output;
    }
}
