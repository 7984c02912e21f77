using System.Diagnostics;
using System.Text.Json;
using Akka.Actor;
using Akka.Streams;
using Microsoft.Extensions.Logging.Abstractions;
using Supervisor.Messages.Protocol;
using Supervisor.Monitoring;

namespace Supervisor.Tests.Monitoring;

/// <summary>The webhook against a receiver written the way small receivers are: Python's http.server.</summary>
public sealed class WebhookSinkTests
{
    // Reads exactly Content-Length bytes, as BaseHTTPRequestHandler users do; a chunked POST with no
    // Content-Length reads as an empty body here.
    private const string Receiver = """
        import http.server, sys
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length).decode('utf-8')
                print('BODY ' + body, flush=True)
                self.send_response(204); self.end_headers()
            def log_message(self, *args): pass
        server = http.server.HTTPServer(('127.0.0.1', 0), H)
        print('PORT %d' % server.server_address[1], flush=True)
        server.serve_forever()
        """;

    [Fact]
    public async Task A_receiver_that_reads_content_length_must_get_the_whole_alert()
    {
        using var python = Process.Start(new ProcessStartInfo("python3", ["-u", "-c", Receiver])
        {
            RedirectStandardOutput = true,
        })!;
        try
        {
            var portLine = await python.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20));
            Assert.StartsWith("PORT ", portLine);
            var url = new Uri($"http://127.0.0.1:{portLine![5..]}/alerts");

            using var system = ActorSystem.Create("webhook-test");
            using var sink = new WebhookSink(new WebhookSettings(url, TimeSpan.FromSeconds(5), 16, 0, TimeSpan.FromMilliseconds(100)),
                system.Materializer(), NullLogger.Instance);
            var alert = new Alert("a1", "heartbeat-timeouts", AlertSeverity.Critical, 51, 50,
                DateTimeOffset.UnixEpoch, null, "51 closes in 1m: connections lost (é)");
            sink.Offer(new WebhookNotification("raised", alert));

            var bodyLine = await python.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20));
            Assert.StartsWith("BODY ", bodyLine);
            using var body = JsonDocument.Parse(bodyLine![5..]);
            Assert.Equal("raised", body.RootElement.GetProperty("event").GetString());
            Assert.Equal("a1", body.RootElement.GetProperty("alert").GetProperty("id").GetString());
            Assert.Equal("51 closes in 1m: connections lost (é)", body.RootElement.GetProperty("alert").GetProperty("message").GetString());
        }
        finally
        {
            python.Kill();
        }
    }
}
