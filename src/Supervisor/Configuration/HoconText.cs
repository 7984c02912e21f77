using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Supervisor.Configuration;

/// <summary>
/// What the operator's HOCON file must pass before Akka's parser sees it. That parser accepts a missing
/// or an extra closing brace without a word, spins forever on any <c>${?VAR}</c>, cannot read
/// <c>${VAR}</c> from the environment, and reports errors as "position 53": so the text is checked here
/// for what it would get wrong, environment substitutions are resolved here as HOCON specifies, and
/// every problem is reported as <c>FILE:LINE:COLUMN</c>.
/// </summary>
internal static partial class HoconText
{
    /// <summary>A config file larger than this is refused (an endless file such as /dev/zero must not fill memory).</summary>
    public const int MaxFileBytes = 1024 * 1024;

    /// <summary>The top-level keys a substitution may refer to as a config path; any other single name is an environment variable.</summary>
    private static readonly string[] ConfigRoots = ["supervisor", "akka"];

    /// <summary>Reads a config file with a size bound; refuses what is not UTF-8 text.</summary>
    public static string ReadFile(string path)
    {
        byte[] bytes;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
            var buffer = new byte[MaxFileBytes + 1];
            var total = 0;
            int read;
            // Read in a loop: a pipe or a character device (/dev/zero) has no length to ask for.
            while (total < buffer.Length && (read = stream.Read(buffer, total, buffer.Length - total)) > 0)
                total += read;
            if (total > MaxFileBytes)
                throw new ConfigurationError(path, $"is larger than {MaxFileBytes / 1024} KiB; not a configuration file");
            bytes = buffer[..total];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationError("--config", $"cannot read '{path}': {e.Message}");
        }

        var nul = Array.IndexOf(bytes, (byte)0);
        if (nul >= 0)
            throw new ConfigurationError(Where(path, Encoding.UTF8.GetString(bytes, 0, nul), nul), "is not a text file (a NUL byte)");
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            var at = Math.Max(0, e.Index);
            throw new ConfigurationError(Where(path, Encoding.UTF8.GetString(bytes, 0, Math.Min(at, bytes.Length)), at), "is not UTF-8 text");
        }
    }

    /// <summary>
    /// Checks brackets and resolves environment substitutions; returns the text for Akka's parser with
    /// the same lines (a value replacing a substitution never holds a newline), and a map back to the
    /// original columns for its error positions.
    /// </summary>
    public static Prepared Prepare(string text, string source, Func<string, string?> environment)
    {
        var output = new StringBuilder(text.Length);
        var shifts = new List<(int OutputAt, int Delta)>();
        var open = new Stack<(char Bracket, int At)>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '#' || (c == '/' && At(text, i + 1) == '/'))
            {
                var end = text.IndexOf('\n', i);
                end = end < 0 ? text.Length : end;
                output.Append(text, i, end - i);
                i = end;
            }
            else if (c == '"' && At(text, i + 1) == '"' && At(text, i + 2) == '"')
            {
                var end = text.IndexOf("\"\"\"", i + 3, StringComparison.Ordinal);
                if (end < 0) throw Error(source, text, i, "a \"\"\" string is never closed");
                while (At(text, end + 3) == '"') end++; // """ may be followed by more quotes that belong to the string
                output.Append(text, i, end + 3 - i);
                i = end + 3;
            }
            else if (c == '"')
            {
                var end = i + 1;
                while (end < text.Length && text[end] != '"' && text[end] != '\n')
                    end += text[end] == '\\' ? 2 : 1;
                if (end >= text.Length || text[end] != '"') throw Error(source, text, i, "a quoted string is never closed on its line");
                output.Append(text, i, end + 1 - i);
                i = end + 1;
            }
            else if (c == '$' && At(text, i + 1) == '{')
            {
                var end = text.IndexOf('}', i);
                var newline = text.IndexOf('\n', i);
                if (end < 0 || (newline >= 0 && newline < end)) throw Error(source, text, i, "a ${ substitution is never closed");
                var inner = text[(i + 2)..end];
                var optional = inner.StartsWith('?');
                var name = (optional ? inner[1..] : inner).Trim();
                if (name.Length == 0) throw Error(source, text, i, "an empty substitution");
                var consumed = end + 1 - i;
                if (!IsEnvironmentName(name))
                {
                    if (optional)
                        throw Error(source, text, i, $"${{?{name}}}: an optional substitution must name an environment variable; for a config path write ${{{name}}}");
                    output.Append(text, i, consumed);
                }
                else if (environment(name) is { } value)
                {
                    // HOCON: an environment variable's value is a string; a quoted one reads as any type's text.
                    var quoted = JsonSerializer.Serialize(value);
                    output.Append(quoted);
                    shifts.Add((output.Length, quoted.Length - consumed));
                }
                else if (!optional)
                {
                    throw Error(source, text, i, $"${{{name}}}: environment variable {name} is not set (write ${{?{name}}} to leave the key at its default)");
                }
                else
                {
                    // HOCON: an unset ${?VAR} makes the field it is the whole value of vanish.
                    var removedFrom = RemoveField(output, source, text, i);
                    var skipped = 0;
                    // "{ c = ${?UNSET}, b = 1 }": with no comma before it, the one after it would lead nothing.
                    var before = output.ToString().TrimEnd(' ', '\t');
                    if (before.Length == 0 || before[^1] is '{' or '\n')
                    {
                        var next = end + 1;
                        while (next < text.Length && text[next] is ' ' or '\t') next++;
                        if (next < text.Length && text[next] == ',') skipped = next + 1 - (end + 1);
                    }
                    shifts.Add((output.Length, -(consumed + removedFrom + skipped)));
                    end += skipped;
                }
                i = end + 1;
            }
            else
            {
                switch (c)
                {
                    case '{' or '[':
                        open.Push((c, i));
                        break;
                    case '}' or ']':
                        var expected = c == '}' ? '{' : '[';
                        if (open.Count == 0) throw Error(source, text, i, $"'{c}' closes nothing (a bracket too many)");
                        var (bracket, at) = open.Pop();
                        if (bracket != expected)
                            throw Error(source, text, i, $"'{c}' where the '{bracket}' opened at {Position(text, at)} is still open");
                        break;
                }
                output.Append(c);
                i++;
            }
        }
        if (open.Count > 0)
        {
            var (bracket, at) = open.Pop();
            throw Error(source, text, at, $"'{bracket}' is never closed (a closing bracket is missing)");
        }
        return new Prepared(output.ToString(), source, text, shifts);
    }

    /// <summary>Removes <c>key = </c> (and a comma that would be left dangling) before an unset <c>${?VAR}</c>; returns how many characters went.</summary>
    private static int RemoveField(StringBuilder output, string source, string text, int substitutionAt)
    {
        var line = output.ToString(LineStart(output), output.Length - LineStart(output));
        var field = FieldBeforeValue().Match(line);
        if (!field.Success)
            throw Error(source, text, substitutionAt, "an unset ${?VAR} must be the whole value of its field (key = ${?VAR})");
        var removeFrom = LineStart(output) + field.Groups["field"].Index;
        var removed = output.Length - removeFrom;
        output.Length = removeFrom;
        // "a = 1, b = ${?UNSET}": the comma before it would be left before nothing.
        var trimmed = output.ToString().TrimEnd(' ', '\t');
        if (trimmed.EndsWith(','))
        {
            removed += output.Length - (trimmed.Length - 1);
            output.Length = trimmed.Length - 1;
        }
        return removed;
    }

    [GeneratedRegex(@"(?:^|[{,])\s*(?<field>[^\s{}\[\],:=#""]+\s*[:=]\s*)$")]
    private static partial Regex FieldBeforeValue();

    private static int LineStart(StringBuilder output)
    {
        for (var k = output.Length - 1; k >= 0; k--)
            if (output[k] == '\n') return k + 1;
        return 0;
    }

    private static bool IsEnvironmentName(string name) =>
        !name.Contains('.') && !ConfigRoots.Contains(name, StringComparer.Ordinal);

    private static char At(string text, int index) => index < text.Length ? text[index] : '\0';

    private static ConfigurationError Error(string source, string text, int at, string message) => new(Where(source, text, at), message);

    /// <summary><c>FILE:LINE:COLUMN</c> of character <paramref name="at"/> (1-based line and column).</summary>
    public static string Where(string source, string text, int at) => $"{source}:{Position(text, at)}";

    private static string Position(string text, int at)
    {
        at = Math.Clamp(at, 0, text.Length);
        var line = 1;
        var lineStart = 0;
        for (var k = 0; k < at; k++)
        {
            if (text[k] != '\n') continue;
            line++;
            lineStart = k + 1;
        }
        return $"{line}:{at - lineStart + 1}";
    }

    /// <summary>The text for Akka's parser, and how to name a position in it as the operator's file:line:column.</summary>
    public sealed record Prepared(string Text, string Source, string Original, IReadOnlyList<(int OutputAt, int Delta)> Shifts)
    {
        /// <summary>The original position of character <paramref name="outputAt"/> of <see cref="Text"/>.</summary>
        public string Where(int outputAt)
        {
            var original = outputAt;
            foreach (var (at, delta) in Shifts)
                if (at <= outputAt) original -= delta;
            return HoconText.Where(Source, Original, original);
        }
    }
}
