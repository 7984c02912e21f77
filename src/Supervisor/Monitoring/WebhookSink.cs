using System.Text.Json;
using Akka;
using Akka.Streams;
using Akka.Streams.Dsl;
using Microsoft.Extensions.Logging;
using Supervisor.Messages.Protocol;

namespace Supervisor.Monitoring;

/// <summary>The JSON body of a webhook POST.</summary>
internal sealed record WebhookNotification(string Event, Alert Alert);

/// <summary>
/// Posts alert transitions to an HTTP endpoint through a bounded Akka.Streams queue: the monitor only
/// offers (never waits), the oldest notification is dropped when the queue is full, and a failed POST
/// is retried with exponential backoff before it is given up with a log line.
/// </summary>
internal sealed class WebhookSink : IDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    private readonly ISourceQueueWithComplete<WebhookNotification> _queue;
    private readonly HttpClient _http;
    private int _pending;

    public WebhookSink(WebhookSettings settings, IMaterializer materializer, ILogger log)
    {
        var url = settings.Url ?? throw new ArgumentException("webhook url is not set", nameof(settings));
        _http = new HttpClient { Timeout = settings.Timeout };
        _queue = Source.Queue<WebhookNotification>(settings.QueueSize, OverflowStrategy.DropHead)
            .SelectAsync(1, notification => PostAsync(url, notification, settings, log))
            .To(Sink.Ignore<NotUsed>())
            .Run(materializer);
    }

    /// <summary>Queues the notification; never blocks.</summary>
    public void Offer(WebhookNotification notification)
    {
        Interlocked.Increment(ref _pending);
        _queue.OfferAsync(notification).ContinueWith(static (offer, sink) =>
        {
            // Not queued (closed, failed): it will never be posted, so it is not pending either.
            if (!offer.IsCompletedSuccessfully || offer.Result is not QueueOfferResult.Enqueued)
                Interlocked.Decrement(ref ((WebhookSink)sink!)._pending);
        }, this, TaskScheduler.Default);
    }

    /// <summary>
    /// Completes with true once every notification offered so far was posted or given up, with false after
    /// <paramref name="timeout"/> (a notification the bounded queue dropped stays pending until then).
    /// </summary>
    public async Task<bool> FlushAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Volatile.Read(ref _pending) > 0)
        {
            if (DateTime.UtcNow >= deadline) return false;
            await Task.Delay(20).ConfigureAwait(false);
        }
        return true;
    }

    private async Task<NotUsed> PostAsync(Uri url, WebhookNotification notification, WebhookSettings settings, ILogger log)
    {
        try
        {
            return await PostWithRetriesAsync(url, notification, settings, log);
        }
        finally
        {
            Interlocked.Decrement(ref _pending);
        }
    }

    private async Task<NotUsed> PostWithRetriesAsync(Uri url, WebhookNotification notification, WebhookSettings settings, ILogger log)
    {
        var backoff = settings.Backoff;
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                // A byte body, not PostAsJsonAsync's stream: that one is sent chunked with no Content-Length,
                // and receivers that read Content-Length (Python's http.server, many small webhook
                // receivers) then see an empty body.
                using var body = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(notification, Json));
                body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
                using var response = await _http.PostAsync(url, body);
                if (response.IsSuccessStatusCode) return NotUsed.Instance;
                if (attempt >= settings.MaxRetries)
                {
                    log.LogWarning("Webhook gave up on {Event} {AlertId}: HTTP {Status}", notification.Event, notification.Alert.Id, (int)response.StatusCode);
                    return NotUsed.Instance;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                if (attempt >= settings.MaxRetries)
                {
                    log.LogWarning("Webhook gave up on {Event} {AlertId}: {Error}", notification.Event, notification.Alert.Id, e.Message);
                    return NotUsed.Instance;
                }
            }
            await Task.Delay(backoff);
            backoff *= 2;
        }
    }

    public void Dispose()
    {
        _queue.Complete();
        _http.Dispose();
    }
}
