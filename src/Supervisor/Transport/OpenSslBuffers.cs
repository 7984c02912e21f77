using System.Net.Security;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Supervisor.Transport;

/// <summary>
/// Lets OpenSSL free a TLS connection's record buffers while they are empty (<c>SSL_MODE_RELEASE_BUFFERS</c>).
/// Without it OpenSSL keeps a read and a write buffer of about 17 KB each for the connection's whole life once it
/// has read and written a record, which is most of what an idle TLS connection costs (bench/README.md, issue 16:
/// memory per connection). .NET does not set the mode and SslStream does not expose its OpenSSL object, so this
/// reaches it through SslStream's private field; wherever that does not hold exactly (another .NET layout, another
/// TLS library, OpenSSL other than the libssl.so.3 loaded in this process) it does nothing and the connection keeps
/// its buffers, as before.
/// </summary>
internal static class OpenSslBuffers
{
    private const int SslCtrlMode = 33;
    private const nint SslModeReleaseBuffers = 0x10;

    private static readonly FieldInfo? SecurityContext = Find();

    /// <summary>Whether this process can set the mode at all (Linux, the .NET layout known, libssl.so.3 loaded).</summary>
    public static bool Available => SecurityContext is not null && !_failed;

    private static volatile bool _failed;

    private static FieldInfo? Find()
    {
        if (!OperatingSystem.IsLinux()) return null;
        var field = typeof(SslStream).GetField("_securityContext", BindingFlags.Instance | BindingFlags.NonPublic);
        return field is not null && typeof(SafeHandle).IsAssignableFrom(field.FieldType) ? field : null;
    }

    /// <summary>
    /// Sets the mode on <paramref name="ssl"/>'s OpenSSL object; call it once the handshake is done and before
    /// the stream reads or writes again (it must not race OpenSSL's own use of the object). False when it could not.
    /// </summary>
    public static bool Release(SslStream ssl)
    {
        if (!Available) return false;
        if (SecurityContext!.GetValue(ssl) is not SafeHandle handle) return false; // no handshake has run on it
        if (handle.GetType().FullName != "Microsoft.Win32.SafeHandles.SafeSslHandle" || !LibSslLoaded.Value)
        {
            _failed = true; // another TLS library or layout: never for this process
            return false;
        }
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return (SslCtrl(handle.DangerousGetHandle(), SslCtrlMode, SslModeReleaseBuffers, 0) & SslModeReleaseBuffers) != 0;
        }
        catch (ObjectDisposedException)
        {
            return false; // closed meanwhile: nothing left to release
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _failed = true;
            return false;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>
    /// The OpenSSL that .NET uses is the libssl.so.3 this class binds to (not an OpenSSL 1.1 picked by
    /// CLR_OPENSSL_VERSION_OVERRIDE): calling one library's function on the other's object would corrupt it.
    /// </summary>
    private static readonly Lazy<bool> LibSslLoaded = new(() =>
    {
        try
        {
            var maps = File.ReadAllText("/proc/self/maps");
            return maps.Contains("/libssl.so.3", StringComparison.Ordinal) && !maps.Contains("/libssl.so.1", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    });

    [DllImport("libssl.so.3", EntryPoint = "SSL_ctrl")]
    private static extern nint SslCtrl(nint ssl, int command, nint argument, nint pointer);
}
