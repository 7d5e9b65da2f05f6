using System.Diagnostics;

namespace MessageQueue.Tests.Docs;

/// <summary>
/// The README's quick start is a complete program: pasted into a new console project (the settings of
/// <c>dotnet new console</c>) that references the library, it builds and runs.
/// </summary>
[TestFixture]
[CancelAfter(240_000)]
public sealed class ReadmeQuickStartTests
{
    [Test]
    public async Task QuickStart_PastedIntoANewConsoleProject_BuildsAndRuns()
    {
        var program = string.Join('\n', ReadmeText.Between(ReadmeText.Readme, "<!-- quickstart:start -->", "<!-- quickstart:end -->")
            .Split('\n').Where(l => !l.TrimStart().StartsWith("```", StringComparison.Ordinal)));
        var dir = Directory.CreateTempSubdirectory("mq-quickstart-");
        try
        {
            var library = Path.Combine(ReadmeText.RepositoryRoot, "src", "MessageQueue", "MessageQueue.csproj");
            await File.WriteAllTextAsync(Path.Combine(dir.FullName, "Program.cs"), program);
            await File.WriteAllTextAsync(Path.Combine(dir.FullName, "QuickStartCheck.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                  </PropertyGroup>
                  <ItemGroup>
                    <ProjectReference Include="{library}" />
                  </ItemGroup>
                </Project>
                """);

            var (exitCode, output) = await RunAsync("dotnet", $"run -c Release --project \"{dir.FullName}\"", dir.FullName);

            Assert.That(exitCode, Is.Zero, output);
            Assert.That(output, Does.Contain("Published to 1 queue; billed order 42").And.Contains("Audited order 43"));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string arguments, string workingDirectory)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }
}
