using Microsoft.Playwright;
using Supervisor.Messages.Wire;
using Supervisor.Tests.Http;
using Supervisor.Tests.Processes;
using Supervisor.Tests.Support;
using Supervisor.Tests.WebSockets;
using Xunit.Abstractions;

namespace Supervisor.Tests.Dashboard;

/// <summary>A real browser renders CPU-heavy pages; it runs alone so the timing tests do not share the CPU with it.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class BrowserCollection
{
    public const string Name = "Headless browser";
}

/// <summary>The dashboard at <c>/</c> in headless Chromium (Debian's <c>/usr/bin/chromium</c>, driven by Playwright).</summary>
[Collection(BrowserCollection.Name)]
public sealed class DashboardTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";
    private static readonly float Timeout = 15_000;

    /// <summary>Screenshots land here, next to the test assembly, as artefacts of the run.</summary>
    public static string ArtefactDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "artifacts");

    private static async Task<(IPlaywright Playwright, IBrowser Browser)> LaunchAsync()
    {
        if (!File.Exists(Chromium))
            throw new InvalidOperationException($"{Chromium} is missing: run scripts/setup.sh (it installs Debian's chromium)");
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = Chromium,
                Headless = true,
                // Tests run as root, where Chromium's sandbox cannot start.
                Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            });
            return (playwright, browser);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    [Fact]
    public async Task Dashboard_must_show_live_connections_by_state_drop_a_closed_one_and_show_an_alert()
    {
        var upstream = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        upstream.Start(); // a dependency that answers, for the probes panel
        await using var service = await TestService.StartAsync($$"""
            supervisor.heartbeat { interval = 500ms, timeout = 60s, server-ping = on }
            supervisor.tcp.limits.first-frame-timeout = off   # the silent peer stays, suspect
            supervisor.monitor.rules { crowd { metric = connections.active, raise-above = 3, clear-below = 0, severity = critical } }
            supervisor.probes.upstream { kind = tcp-connect, endpoint = "127.0.0.1:{{((System.Net.IPEndPoint)upstream.LocalEndpoint).Port}}", interval = 200ms, timeout = 200ms, rise = 1, fall = 2 }
            """);
        using var api = new ApiClient(service);
        using var silent = await TestPeer.ConnectAsync(service.Port);
        using var leaving = await TestPeer.ConnectAsync(service.Port);
        using var chatty = await TestPeer.ConnectAsync(service.Port);
        using var ws = await WsPeer.ConnectAsync(service.WebSocketPort);
        using var stop = new CancellationTokenSource();
        // One TCP peer answers the server's pings, which gives the table and the chart an RTT.
        var answering = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var ping = await chatty.ReceiveFrameAsync(TimeSpan.FromSeconds(30));
                if (ping is null) return;
                if (ping.Type == FrameType.Heartbeat) await chatty.SendFrameAsync(Frame.HeartbeatResponse(1, ping.Seq));
            }
        });
        // It announces a 2 s interval (negotiated heartbeats): its row shows the cadence it was given.
        await chatty.SendFrameAsync(new Frame(FrameType.Heartbeat, 1, null, 1) { Interval = 2000 });
        var all = await api.WaitForAsync("/api/connections", p => p.GetProperty("total").GetInt32() == 4);
        string IdOf(string remote) => all.GetProperty("items").EnumerateArray()
            .Single(c => c.GetProperty("remote").GetString() == remote).GetProperty("id").GetString()!;
        var silentId = IdOf(silent.Socket.LocalEndPoint!.ToString()!);
        var leavingId = IdOf(leaving.Socket.LocalEndPoint!.ToString()!);
        var chattyId = IdOf(chatty.Socket.LocalEndPoint!.ToString()!);
        var wsId = all.GetProperty("items").EnumerateArray().Single(c => c.GetProperty("protocol").GetString() == "ws").GetProperty("id").GetString()!;

        var (playwright, browser) = await LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1100 } });
        var consoleErrors = new List<string>();
        page.Console += (_, message) => { if (message.Type == "error") consoleErrors.Add($"{message.Text} ({message.Location})"); };
        page.PageError += (_, error) => consoleErrors.Add(error);
        await page.GotoAsync(service.HttpBase.ToString());

        // Every connection the test opened shows up, its state coloured.
        foreach (var id in new[] { silentId, leavingId, chattyId, wsId })
            await page.Locator($"tr[data-connection-id='{id}']").WaitForAsync(new() { Timeout = Timeout });
        await page.Locator($"tr.suspect[data-connection-id='{silentId}'] .badge.suspect").WaitForAsync(new() { Timeout = Timeout });
        Assert.Equal("ws", await page.Locator($"tr[data-connection-id='{wsId}'] td").Nth(2).TextContentAsync());
        await page.Locator($"tr[data-connection-id='{chattyId}'] td:nth-child(9):has-text('ms')").WaitForAsync(new() { Timeout = Timeout });
        Assert.Equal("600s/30s/3", await page.Locator($"tr[data-connection-id='{chattyId}'] td").Nth(11).TextContentAsync());
        await page.Locator($"tr[data-connection-id='{chattyId}'] td:nth-child(13):text-is('every 2.0 s')").WaitForAsync(new() { Timeout = Timeout });
        Assert.Equal("", await page.Locator($"tr[data-connection-id='{silentId}'] td").Nth(12).TextContentAsync());

        // An alert appears once the monitor raises it.
        var alert = page.Locator("tr[data-alert-rule='crowd']");
        await alert.WaitForAsync(new() { Timeout = Timeout });
        Assert.Equal("critical", await alert.Locator(".badge").TextContentAsync());
        // Its value is the current one and its peak at least that (4 connections: raise-above 3).
        var value = double.Parse((await alert.Locator("td").Nth(2).TextContentAsync())!, System.Globalization.CultureInfo.InvariantCulture);
        var peak = double.Parse((await alert.Locator("td").Nth(3).TextContentAsync())!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(value >= 4 && peak >= value, $"crowd alert shows value {value}, peak {peak}");

        // The probes panel shows the dependency up.
        await page.Locator("tr[data-probe='upstream'] .badge:text-is('up')").WaitForAsync(new() { Timeout = Timeout });
        upstream.Stop();

        // A closed connection disappears, and its close is counted by reason.
        leaving.Dispose();
        await page.Locator($"tr[data-connection-id='{leavingId}']").WaitForAsync(new() { State = WaitForSelectorState.Detached, Timeout = Timeout });
        // (peer-closed, or peer-reset when the server's pings were still unread in its socket)
        await page.Locator("#stat-closed:text-is('1')").WaitForAsync(new() { Timeout = Timeout });
        Assert.Equal("3", await page.Locator("#stat-active").TextContentAsync());
        var reasons = await page.Locator("#reasons tr:not(.zero) td:first-child").AllTextContentsAsync();
        Assert.Contains(Assert.Single(reasons), new[] { "peer-closed", "peer-reset" });

        // The server filters by state: only the suspect ones are sent.
        await page.SelectOptionAsync("#state", "suspect");
        await page.Locator($"tr[data-connection-id='{chattyId}']").WaitForAsync(new() { State = WaitForSelectorState.Detached, Timeout = Timeout });
        await page.Locator($"tr[data-connection-id='{silentId}']").WaitForAsync(new() { Timeout = Timeout });
        Assert.DoesNotContain("active", await page.Locator("#connections .badge").AllTextContentsAsync());
        await page.SelectOptionAsync("#state", "");
        await page.Locator($"tr[data-connection-id='{chattyId}']").WaitForAsync(new() { Timeout = Timeout });

        // The chart has drawn the active-connections line (blue pixels on the canvas).
        var blue = await page.EvaluateAsync<int>("""
            () => {
              const c = document.getElementById('chart');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0;
              for (let i = 0; i < d.length; i += 4) if (d[i] < 90 && d[i + 1] < 140 && d[i + 2] > 200 && d[i + 3] > 200) n++;
              return n;
            }
            """);
        Assert.True(blue > 20, $"the chart drew {blue} blue pixels");

        Directory.CreateDirectory(ArtefactDirectory);
        var screenshot = Path.Combine(ArtefactDirectory, "dashboard.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        output.WriteLine($"screenshot: {screenshot}");
        Assert.Empty(consoleErrors);

        stop.Cancel();
        chatty.Dispose();
        await Task.WhenAny(answering, Task.Delay(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Dashboard_of_a_cluster_node_must_show_every_node_and_a_lost_one()
    {
        await using var cluster = await Cluster.ClusterNodes.StartAsync(3, output);
        var peers = new List<TestPeer>();
        try
        {
            for (var i = 0; i < 3; i++) peers.AddRange(await Cluster.ClusterNodes.ConnectAsync(cluster[i], i + 1));
            var (playwright, browser) = await LaunchAsync();
            using var _ = playwright;
            await using var __ = browser;
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1200 } });
            var consoleErrors = new List<string>();
            page.PageError += (_, error) => consoleErrors.Add(error);
            await page.GotoAsync(cluster[0].Api.Http.BaseAddress!.ToString());

            // Every member, with the connections it holds; this node, the leader and the monitor's node are marked.
            for (var i = 0; i < 3; i++)
                await page.Locator($"tr[data-node='{cluster[i].Name}'] td:nth-child(5):text-is('{i + 1}')").WaitForAsync(new() { Timeout = Timeout });
            Assert.Contains("this node", await page.Locator($"tr[data-node='{cluster[0].Name}'] td").Nth(5).TextContentAsync());
            Assert.Contains("monitor", await page.Locator($"tr[data-node='{cluster[0].Name}'] td").Nth(5).TextContentAsync());
            // The table lists the other nodes' connections too.
            await page.Locator($"#connections tr[data-connection-id$='@{cluster[2].Name}']").First.WaitForAsync(new() { Timeout = Timeout });
            Assert.Equal(6, await page.Locator("#connections tr[data-connection-id]").CountAsync());

            cluster[2].Process.Signal(ChildProcess.SigKill);
            await page.Locator($"tr[data-departed='{cluster[2].Name}'] .badge:text-is('node-down')").WaitForAsync(new() { Timeout = Timeout });
            await page.Locator($"tr[data-alert-rule='node-down:{cluster[2].Name}']").WaitForAsync(new() { Timeout = Timeout });
            await page.Locator($"#connections tr[data-connection-id$='@{cluster[2].Name}']").First.WaitForAsync(new() { State = WaitForSelectorState.Detached, Timeout = Timeout });
            Assert.Equal("3", await page.Locator("#stat-active").TextContentAsync());

            Directory.CreateDirectory(ArtefactDirectory);
            var screenshot = Path.Combine(ArtefactDirectory, "dashboard-cluster.png");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
            output.WriteLine($"screenshot: {screenshot}");
            Assert.Empty(consoleErrors);
        }
        finally
        {
            foreach (var peer in peers) peer.Dispose();
        }
    }

    [Fact]
    public async Task The_readme_websocket_console_example_must_work_as_written_in_the_console_of_the_dashboard_page()
    {
        // The example exactly as README.md prints it, with the test service's WebSocket port for 8082.
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Supervisor.sln"))) directory = directory.Parent;
        var readme = File.ReadAllText(Path.Combine(directory!.FullName, "README.md"));
        var example = System.Text.RegularExpressions.Regex.Match(readme, "`(w = new WebSocket\\(\"ws://127\\.0\\.0\\.1:8082/ws\"\\);[^`]*)`");
        Assert.True(example.Success, "README.md no longer has the WebSocket console example");
        await using var service = await TestService.StartAsync("supervisor.tcp.limits.first-frame-timeout = off");
        var snippet = example.Groups[1].Value.Replace("127.0.0.1:8082", $"127.0.0.1:{service.WebSocketPort}", StringComparison.Ordinal);

        var (playwright, browser) = await LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync();
        var console = new System.Collections.Concurrent.ConcurrentQueue<string>();
        page.Console += (_, message) => console.Enqueue($"{message.Type}: {message.Text}");
        await page.GotoAsync(service.HttpBase.ToString());
        // Run as typed into the console (a classic script in the page), its console.log caught.
        var received = await page.EvaluateAsync<string>($$"""
            () => new Promise((resolve, reject) => {
              const log = console.log;
              console.log = m => { log(m); resolve(String(m)); };
              setTimeout(() => reject(new Error("no message within 10 s")), 10000);
              const script = document.createElement("script");
              script.textContent = {{System.Text.Json.JsonSerializer.Serialize("try { " + snippet + " } catch (e) { console.error(String(e)); }")}};
              window.addEventListener("securitypolicyviolation", e => reject(new Error("CSP refused " + e.blockedURI + " by " + e.violatedDirective)));
              document.head.appendChild(script);
            })
            """);
        output.WriteLine($"the console logged: {received}; console: {string.Join(" | ", console)}");
        var frame = System.Text.Json.JsonDocument.Parse(received).RootElement;
        Assert.Equal((int)FrameType.HeartbeatResponse, frame.GetProperty("type").GetInt32());
        Assert.Equal(1, frame.GetProperty("seq").GetInt64());
    }

    [Fact]
    public async Task Dashboard_must_page_through_the_table_on_the_server()
    {
        await using var service = await TestService.StartAsync();
        using var api = new ApiClient(service);
        var peers = new List<TestPeer>();
        try
        {
            for (var i = 0; i < 30; i++) peers.Add(await TestPeer.ConnectAsync(service.Port));
            var ids = (await api.WaitForAsync("/api/connections", p => p.GetProperty("total").GetInt32() == 30))
                .GetProperty("items").EnumerateArray().Select(c => c.GetProperty("id").GetString()!).ToArray();

            var (playwright, browser) = await LaunchAsync();
            using var _ = playwright;
            await using var __ = browser;
            var page = await browser.NewPageAsync();
            await page.GotoAsync(service.HttpBase.ToString());
            await page.SelectOptionAsync("#limit", "25");
            // All 30 rows (ids[24] among them) are on the page before the change too: wait for the page of 25 itself.
            await page.WaitForFunctionAsync("() => document.querySelector('#range')?.textContent === '1–25 of 30'", null, new() { Timeout = Timeout });
            Assert.Equal(25, await page.Locator("#connections tr[data-connection-id]").CountAsync());
            Assert.Equal("1–25 of 30", await page.Locator("#range").TextContentAsync());

            await page.ClickAsync("#next");
            await page.Locator($"tr[data-connection-id='{ids[29]}']").WaitForAsync(new() { Timeout = Timeout });
            Assert.Equal(5, await page.Locator("#connections tr[data-connection-id]").CountAsync());
            Assert.Equal("26–30 of 30", await page.Locator("#range").TextContentAsync());
            Assert.True(await page.Locator("#next").IsDisabledAsync());
        }
        finally
        {
            foreach (var peer in peers) peer.Dispose();
        }
    }

    [Fact]
    public async Task Dashboard_refused_for_too_many_event_streams_must_say_so_and_go_live_once_a_slot_frees()
    {
        await using var service = await TestService.StartAsync("supervisor.http.max-event-clients = 1");
        using var api = new ApiClient(service);
        var holder = await api.Http.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(System.Net.HttpStatusCode.OK, holder.StatusCode);

        var (playwright, browser) = await LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync();
        await page.GotoAsync(service.HttpBase.ToString());
        await page.Locator("#stream:has-text('refused')").WaitForAsync(new() { Timeout = Timeout });

        holder.Dispose();
        // The page tries again 5 s after the refusal.
        await page.Locator("#stream.live").WaitForAsync(new() { Timeout = 5_000 + Timeout });
        await page.Locator("#stat-active").WaitForAsync(new() { Timeout = Timeout });
    }
}
