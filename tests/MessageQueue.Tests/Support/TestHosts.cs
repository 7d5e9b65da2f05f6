using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Support;

/// <summary>Hosts for hosting tests: no default configuration sources or logging, only what the test registers.</summary>
public static class TestHosts
{
    public static IHost Build(Action<IServiceCollection> configure)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        configure(builder.Services);
        return builder.Build();
    }
}
