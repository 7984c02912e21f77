using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace Supervisor.Tests.Hardening;

/// <summary>PROXY protocol headers as load balancers send them (doc/proxy-protocol.txt), for the tests.</summary>
public static class ProxyHeaders
{
    public static readonly byte[] V2Signature = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary><c>PROXY TCP4|TCP6 src dst sport dport\r\n</c>.</summary>
    public static byte[] V1(IPEndPoint source, IPEndPoint destination) => Encoding.ASCII.GetBytes(
        $"PROXY {(source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "TCP4" : "TCP6")} {source.Address} {destination.Address} {source.Port} {destination.Port}\r\n");

    /// <summary>A v2 PROXY (command 1) header over TCP with the given TLVs (type, value) after the addresses.</summary>
    public static byte[] V2(IPEndPoint source, IPEndPoint destination, params (byte Type, byte[] Value)[] tlvs)
    {
        var v4 = source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
        var addresses = new List<byte>();
        addresses.AddRange(source.Address.GetAddressBytes());
        addresses.AddRange(destination.Address.GetAddressBytes());
        addresses.AddRange(BigEndian((ushort)source.Port));
        addresses.AddRange(BigEndian((ushort)destination.Port));
        return V2Raw(0x21, v4 ? (byte)0x11 : (byte)0x21, [.. addresses, .. Tlvs(tlvs)]);
    }

    /// <summary>A v2 LOCAL header (a proxy's own health check), with an address block it must be ignored.</summary>
    public static byte[] V2Local() => V2Raw(0x20, 0x11, new byte[12]);

    /// <summary>Signature, version/command byte, family/transport byte, and the block with its length.</summary>
    public static byte[] V2Raw(byte versionCommand, byte familyTransport, byte[] block, int? announcedLength = null) =>
        [.. V2Signature, versionCommand, familyTransport, .. BigEndian((ushort)(announcedLength ?? block.Length)), .. block];

    public static byte[] Tlvs(params (byte Type, byte[] Value)[] tlvs) =>
        tlvs.SelectMany(t => new[] { t.Type }.Concat(BigEndian((ushort)t.Value.Length)).Concat(t.Value)).ToArray();

    private static byte[] BigEndian(ushort value)
    {
        var bytes = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        return bytes;
    }
}
