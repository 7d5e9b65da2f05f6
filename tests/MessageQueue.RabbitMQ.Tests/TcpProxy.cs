using System.Net;
using System.Net.Sockets;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>A TCP proxy to the node, so a test can drop the broker's connection as a network failure would and
/// let the client reconnect through it.</summary>
internal sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly List<Socket> _sockets = [];
    private readonly CancellationTokenSource _stop = new();
    private Uri _target = null!;
    private Task _accepting = Task.CompletedTask;

    internal string Url => new UriBuilder(_target) { Port = ((IPEndPoint)_listener.LocalEndpoint).Port }.Uri.ToString();

    internal static TcpProxy Start(Uri target)
    {
        var proxy = new TcpProxy { _target = target };
        proxy._listener.Start();
        proxy._accepting = proxy.AcceptAsync();
        return proxy;
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_stop.Token);
                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await server.ConnectAsync(_target.Host, _target.Port, _stop.Token);
                lock (_sockets)
                {
                    _sockets.AddRange([client, server]);
                }

                _ = PumpAsync(client, server);
                _ = PumpAsync(server, client);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private static async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            for (int read; (read = await from.ReceiveAsync(buffer, SocketFlags.None)) > 0;)
            {
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        from.Dispose();
        to.Dispose();
    }

    /// <summary>Resets every proxied connection at once; new ones are accepted.</summary>
    internal void DropConnections()
    {
        lock (_sockets)
        {
            foreach (var socket in _sockets)
            {
                try
                {
                    socket.LingerState = new LingerOption(true, 0);
                    socket.Dispose();
                }
                catch (ObjectDisposedException)
                {
                    // its pump closed it already
                }
            }

            _sockets.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        DropConnections();
        _stop.Dispose();
    }
}
