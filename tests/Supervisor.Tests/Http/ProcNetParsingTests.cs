using System.Net;
using System.Runtime.InteropServices;
using Supervisor.Http;
using Supervisor.Transport;

namespace Supervisor.Tests.Http;

/// <summary>The readers of /proc/net and TCP_INFO on fixed input, as the kernel writes it.</summary>
public sealed class ProcNetParsingTests
{
    [Fact]
    public void Sockstat_must_be_read_by_protocol_and_field()
    {
        var parsed = ProcNet.ParseSockstat("""
            sockets: used 163
            TCP: inuse 5 orphan 1 tw 2 alloc 7 mem 3
            UDP: inuse 1 mem 0
            TCP6: inuse 2
            """);
        Assert.Equal(163, parsed["sockets"]["used"]);
        Assert.Equal((5L, 1L, 2L, 7L, 3L), (parsed["tcp"]["inuse"], parsed["tcp"]["orphan"], parsed["tcp"]["tw"], parsed["tcp"]["alloc"], parsed["tcp"]["mem"]));
        Assert.Equal(2, parsed["tcp6"]["inuse"]);
    }

    [Fact]
    public void Tcp_tables_must_yield_local_address_port_and_state_for_ipv4_and_ipv6()
    {
        const string tcp = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
               1: 0100007F:1F91 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
               2: 0100007F:1F91 0100007F:D2F2 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
            """;
        const string tcp6 = """
              sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 00000000000000000000000001000000:1F92 00000000000000000000000001000000:A000 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 1 10 -1
            """;
        var entries = ProcNet.ParseTcpTable(tcp).Concat(ProcNet.ParseTcpTable(tcp6)).ToArray();
        Assert.Equal(4, entries.Length);
        Assert.All(entries.Take(3), e => Assert.Equal(IPAddress.Loopback, e.Local));
        Assert.Equal(8081, entries[0].Port);
        Assert.Equal([0x0A, ProcNet.Established, ProcNet.TimeWait], entries.Take(3).Select(e => e.State));
        Assert.Equal(IPAddress.IPv6Loopback, entries[3].Local);
        Assert.Equal(8082, entries[3].Port);

        var counted = ProcNet.Count("tcp", "tcp", new IPEndPoint(IPAddress.Loopback, 8081), entries);
        Assert.Equal((1, 1, 0), (counted.Established, counted.TimeWait, counted.CloseWait));
        var wildcard = ProcNet.Count("ws", "ws", new IPEndPoint(IPAddress.IPv6Any, 8082), entries);
        Assert.Equal(1, wildcard.Established);
        var elsewhere = ProcNet.Count("tcp", "tcp", new IPEndPoint(IPAddress.Parse("10.0.0.1"), 8081), entries);
        Assert.Equal(0, elsewhere.Established);
    }

    [Fact]
    public void Tcp_info_must_be_decoded_from_the_kernels_struct_layout()
    {
        var raw = new byte[232];
        raw[0] = 1; // TCP_ESTABLISHED
        raw[2] = 3; // tcpi_retransmits
        void U32(int offset, uint value) => MemoryMarshal.Write(raw.AsSpan(offset), in value);
        U32(8, 204_000);   // tcpi_rto, µs
        U32(24, 2);        // tcpi_unacked
        U32(32, 1);        // tcpi_lost
        U32(68, 1_500);    // tcpi_rtt, µs
        U32(72, 750);      // tcpi_rttvar, µs
        U32(80, 10);       // tcpi_snd_cwnd
        U32(100, 4);       // tcpi_total_retrans
        var info = TcpInfoReader.Parse(raw);
        Assert.Equal("established", info.State);
        Assert.Equal(3, info.Retransmits);
        Assert.Equal(204, info.RtoMs);
        Assert.Equal(1.5, info.RttMs);
        Assert.Equal(0.75, info.RttVarMs);
        Assert.Equal((2L, 1L, 4L, 10L), (info.Unacked, info.Lost, info.TotalRetrans, info.SendCongestionWindow));
    }
}
