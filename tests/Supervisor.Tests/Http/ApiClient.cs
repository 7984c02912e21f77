using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Supervisor.Tests.Support;

namespace Supervisor.Tests.Http;

/// <summary>
/// The operator-surface tests that start real hosts (Kestrel, WebSocket peers) run one class at a time,
/// after the parallel tests, so the timing-sensitive heartbeat tests do not share two cores with them.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class OperatorSurfaceCollection
{
    public const string Name = "Operator surface";
}

/// <summary>A plain HTTP client of a test service's operator surface, reading answers as JSON documents.</summary>
public sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;

    public ApiClient(TestService service) : this(service.HttpBase) { }

    public ApiClient(Uri baseAddress) =>
        _http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };

    public HttpClient Http => _http;

    public async Task<(HttpStatusCode Status, JsonElement Body)> GetJsonAsync(string path) => await SendAsync(HttpMethod.Get, path);

    public async Task<JsonElement> GetOkAsync(string path)
    {
        var (status, body) = await GetJsonAsync(path);
        Assert.True(status == HttpStatusCode.OK, $"GET {path}: {(int)status} {body}");
        return body;
    }

    /// <param name="headers">Extra request headers as a browser would send them (<c>Host</c>, <c>Origin</c>, <c>Sec-Fetch-Site</c>).</param>
    public async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, string? bearer = null,
        IReadOnlyDictionary<string, string>? headers = null)
    {
        var (status, _, text) = await SendRawAsync(method, path, bearer, headers);
        var body = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        return (status, body);
    }

    /// <summary>Any route, answered as text; an event stream is not read (its body never ends) and comes back as "".</summary>
    public async Task<(HttpStatusCode Status, HttpResponseHeaders Headers, string Text)> SendRawAsync(HttpMethod method, string path,
        string? bearer = null, IReadOnlyDictionary<string, string>? headers = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            if (string.Equals(name, "Host", StringComparison.OrdinalIgnoreCase)) request.Headers.Host = value;
            else request.Headers.TryAddWithoutValidation(name, value);
        }
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var text = response.Content.Headers.ContentType?.MediaType == "text/event-stream" ? "" : await response.Content.ReadAsStringAsync();
        return (response.StatusCode, response.Headers, text);
    }

    /// <summary>Polls a GET until the condition holds on its JSON; fails with the last body otherwise.</summary>
    public async Task<JsonElement> WaitForAsync(string path, Func<JsonElement, bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var body = await GetOkAsync(path);
            if (condition(body)) return body;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"GET {path} never met the condition; last: {body}");
            await Task.Delay(50);
        }
    }

    public void Dispose() => _http.Dispose();
}
