using System.Globalization;
using System.Text;

namespace Supervisor.Tests.Hardening.Fuzz;

/// <summary>
/// How big a fuzz run is and where its randomness comes from. CI runs a small, fixed-seed run; an operator runs
/// the big one with <c>SUPERVISOR_FUZZ_FRAMES=100000</c> and, to explore, <c>SUPERVISOR_FUZZ_SEED=random</c>
/// (or a number printed by an earlier run, to reproduce it).
/// </summary>
internal static class FrameFuzzing
{
    /// <summary>
    /// Frames a run generates, <c>SUPERVISOR_FUZZ_FRAMES</c>: the service run shares them among its transports;
    /// the codec run decodes that many lines, and never fewer than its CI default.
    /// </summary>
    public static int Frames(int ciDefault) =>
        int.TryParse(Environment.GetEnvironmentVariable("SUPERVISOR_FUZZ_FRAMES"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : ciDefault;

    /// <summary>The run's seed: <c>SUPERVISOR_FUZZ_SEED</c> (a number, or <c>random</c>), else <paramref name="ciDefault"/>.</summary>
    public static int Seed(int ciDefault)
    {
        var text = Environment.GetEnvironmentVariable("SUPERVISOR_FUZZ_SEED");
        if (string.Equals(text, "random", StringComparison.OrdinalIgnoreCase)) return Random.Shared.Next();
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed) ? seed : ciDefault;
    }

    /// <summary>The seed of case <paramref name="index"/> of a run, so any one case reproduces without replaying the others.</summary>
    /// <remarks>
    /// A fixed mix (SplitMix64's finalizer), not <see cref="HashCode.Combine{T1, T2}"/>: that one is seeded anew in every
    /// process, so the same run seed made other cases each run and a failure found once could not be replayed (seen:
    /// a codec finding in one whole run of seed 1201 that the runs before had not generated).
    /// </remarks>
    public static int CaseSeed(int runSeed, int index)
    {
        var z = ((ulong)(uint)runSeed << 32 | (uint)index) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }

    /// <summary>Bytes as a C#-style literal: printable ASCII as is, everything else escaped, so a reproducer can be pasted.</summary>
    public static string Escape(ReadOnlySpan<byte> bytes, int max = 600)
    {
        var sb = new StringBuilder("\"");
        foreach (var b in bytes[..Math.Min(bytes.Length, max)])
        {
            sb.Append(b switch
            {
                (byte)'"' => "\\\"",
                (byte)'\\' => "\\\\",
                (byte)'\n' => "\\n",
                (byte)'\r' => "\\r",
                (byte)'\t' => "\\t",
                >= 0x20 and < 0x7F => ((char)b).ToString(),
                _ => $"\\x{b:x2}",
            });
        }
        sb.Append('"');
        if (bytes.Length > max) sb.Append($" ... ({bytes.Length} bytes)");
        return sb.ToString();
    }

    /// <summary>
    /// The smallest input found (by removing runs of bytes, halving their length down to one) that still fails
    /// <paramref name="fails"/>; a reproducer small enough to read.
    /// </summary>
    public static byte[] Shrink(byte[] input, Func<byte[], bool> fails)
    {
        var current = input;
        for (var chunk = Math.Max(1, current.Length / 2); chunk >= 1; chunk /= 2)
        {
            var removed = true;
            while (removed)
            {
                removed = false;
                for (var at = 0; at + chunk <= current.Length; at += chunk)
                {
                    var candidate = current[..at].Concat(current[(at + chunk)..]).ToArray();
                    if (SafeFails(fails, candidate))
                    {
                        current = candidate;
                        removed = true;
                        break;
                    }
                }
            }
            if (chunk == 1) break;
        }
        return current;
    }

    private static bool SafeFails(Func<byte[], bool> fails, byte[] candidate)
    {
        try { return fails(candidate); }
        catch { return true; }
    }
}
