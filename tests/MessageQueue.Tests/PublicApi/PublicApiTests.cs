using System.Reflection;
using System.Runtime.CompilerServices;
using PublicApiGenerator;

namespace MessageQueue.Tests.PublicApi;

/// <summary>
/// Approval tests of the public surface: every change to a public type or member shows in a diff of the approved
/// files next to this one. When a change is intended, the test writes <c>*.received.txt</c>; review it and copy it
/// over <c>*.approved.txt</c> (or run with <c>MQ_APPROVE_PUBLIC_API=1</c>).
/// </summary>
[TestFixture]
public sealed class PublicApiTests
{
    [TestCase(typeof(MessageBrokerBuilder), "MessageQueue")]
    [TestCase(typeof(SqliteBrokerBuilderExtensions), "MessageQueue.Sqlite")]
    [TestCase(typeof(LiteDbBrokerBuilderExtensions), "MessageQueue.LiteDB")]
    [TestCase(typeof(MessageQueue.Testing.MessageQueueTestHarness), "MessageQueue.Testing")]
    [TestCase(typeof(RabbitMqBrokerBuilderExtensions), "MessageQueue.RabbitMQ")]
    public void PublicApi_IsTheApprovedOne(Type anyType, string name)
    {
        var api = anyType.Assembly.GeneratePublicApi(new ApiGeneratorOptions
        {
            ExcludeAttributes = [typeof(InternalsVisibleToAttribute).FullName!, "System.Runtime.Versioning.TargetFrameworkAttribute", typeof(AssemblyMetadataAttribute).FullName!],
        }).ReplaceLineEndings("\n");
        var folder = Folder();
        var approvedPath = Path.Combine(folder, $"{name}.approved.txt");
        var receivedPath = Path.Combine(folder, $"{name}.received.txt");
        var approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath).ReplaceLineEndings("\n") : "";
        if (api == approved)
        {
            File.Delete(receivedPath);
            return;
        }

        if (Environment.GetEnvironmentVariable("MQ_APPROVE_PUBLIC_API") == "1")
        {
            File.WriteAllText(approvedPath, api);
            return;
        }

        File.WriteAllText(receivedPath, api);
        var added = api.Split('\n').Except(approved.Split('\n')).Take(20);
        var removed = approved.Split('\n').Except(api.Split('\n')).Take(20);
        Assert.Fail($"The public API of {name} changed. Review {receivedPath} and, if intended, copy it over {approvedPath}.\n" +
                    $"Added:\n  {string.Join("\n  ", added)}\nRemoved:\n  {string.Join("\n  ", removed)}");
    }

    /// <summary>
    /// This file's folder. The compiler's path is used when it exists; a CI build (<c>ContinuousIntegrationBuild</c>)
    /// maps source paths to <c>/_/</c>, so then the folder is found from the test binaries up to the solution.
    /// </summary>
    private static string Folder([CallerFilePath] string path = "")
    {
        var compiled = Path.GetDirectoryName(path)!;
        if (Directory.Exists(compiled)) return compiled;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MessageQueue.sln")))
                return Path.Combine(dir.FullName, "tests", "MessageQueue.Tests", "PublicApi");
        }

        throw new DirectoryNotFoundException($"Neither {compiled} nor a folder holding MessageQueue.sln above {AppContext.BaseDirectory} exists.");
    }
}
