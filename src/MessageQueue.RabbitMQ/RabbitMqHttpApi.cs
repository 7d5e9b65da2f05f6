using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace MessageQueue.RabbitMq;

/// <summary>
/// RabbitMQ's management HTTP API (the <c>rabbitmq_management</c> plugin), when <see cref="RabbitMqOptions.ManagementUrl"/>
/// names it: queue counters AMQP cannot give, and the names of every queue of the virtual host. Credentials come from
/// the management URL, else from the AMQP URL. RabbitMQ samples its counters (every 5 seconds by default,
/// <c>collect_statistics_interval</c>), so they trail the queue by up to that long.
/// </summary>
internal sealed class RabbitMqHttpApi : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _vhost;

    internal RabbitMqHttpApi(Uri management, Uri amqp, TimeSpan timeout)
    {
        var userInfo = management.UserInfo.Length > 0 ? management.UserInfo : amqp.UserInfo.Length > 0 ? amqp.UserInfo : "guest:guest";
        var root = new UriBuilder(management) { UserName = "", Password = "" }.Uri;
        _http = new HttpClient
        {
            BaseAddress = root.AbsoluteUri.EndsWith('/') ? root : new Uri(root.AbsoluteUri + "/"),
            Timeout = timeout < TimeSpan.FromDays(24) ? timeout : Timeout.InfiniteTimeSpan, // HttpClient takes at most ~24.8 days
        };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.UnescapeDataString(userInfo))));
        var path = amqp.AbsolutePath.TrimStart('/');
        _vhost = Uri.EscapeDataString(path.Length == 0 ? "/" : Uri.UnescapeDataString(path));
    }

    /// <summary>A queue's counters as the management API reports them.</summary>
    /// <exception cref="TopologyException">The queue does not exist.</exception>
    /// <exception cref="MessageQueueException">The API could not be reached or refused the request.</exception>
    internal async Task<QueueInfo> GetQueueAsync(string queue, CancellationToken cancellationToken)
    {
        using var document = await GetAsync($"api/queues/{_vhost}/{Uri.EscapeDataString(queue)}", $"queue '{queue}'", cancellationToken).ConfigureAwait(false);
        var q = document.RootElement;
        var stats = q.TryGetProperty("message_stats", out var s) ? s : default;
        return new QueueInfo
        {
            Name = queue,
            Ready = Int(q, "messages_ready"),
            Unacked = Int(q, "messages_unacknowledged"),
            Consumers = Int(q, "consumers"),
            Published = Long(stats, "publish"),
            Delivered = Long(stats, "deliver_get"),
            Acked = Long(stats, "ack"),
            Redelivered = Long(stats, "redeliver"),
            HeadMessageTimestamp = q.TryGetProperty("head_message_timestamp", out var head) && head.ValueKind == JsonValueKind.Number
                ? DateTimeOffset.FromUnixTimeSeconds(head.GetInt64())
                : null,
        };
    }

    /// <summary>The names of every queue of the virtual host.</summary>
    internal async Task<List<string>> GetQueueNamesAsync(CancellationToken cancellationToken)
    {
        using var document = await GetAsync($"api/queues/{_vhost}?columns=name", "the queues", cancellationToken).ConfigureAwait(false);
        return [.. document.RootElement.EnumerateArray().Select(q => q.GetProperty("name").GetString()!)];
    }

    private async Task<JsonDocument> GetAsync(string path, string what, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.GetAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException || (ex is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new MessageQueueException($"RabbitMQ's management API at {_http.BaseAddress} could not be reached for {what}: {ex.Message}", ex);
        }

        using (response)
        {
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                throw new TopologyException($"{char.ToUpperInvariant(what[0])}{what[1..]} does not exist on the RabbitMQ server.");
            }

            if (!response.IsSuccessStatusCode)
            {
                throw new MessageQueueException($"RabbitMQ's management API at {_http.BaseAddress} answered {(int)response.StatusCode} {response.ReasonPhrase} for {what}.");
            }

            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                return await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static int Int(JsonElement e, string name) => e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : 0;

    private static long Long(JsonElement e, string name) => e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;

    public void Dispose() => _http.Dispose();
}
