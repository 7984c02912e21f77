using System.Globalization;

namespace Supervisor.Tests.Support;

/// <summary>A /metrics answer in the Prometheus text format, summed by metric name and an optional label.</summary>
internal sealed class PrometheusText(IReadOnlyList<(string Name, string Labels, double Value)> samples)
{
    public double Sum(string name, string? label = null) =>
        samples.Where(s => s.Name == name && (label is null || s.Labels.Contains(label, StringComparison.Ordinal))).Sum(s => s.Value);

    public static PrometheusText Parse(string text) => new(text.Split('\n')
        .Where(line => line.Length > 0 && !line.StartsWith('#'))
        .Select(line =>
        {
            var brace = line.IndexOf('{');
            var space = line.LastIndexOf('}') is var close and > 0 ? line.IndexOf(' ', close) : line.IndexOf(' ');
            var name = brace > 0 && brace < space ? line[..brace] : line[..space];
            var labels = brace > 0 && brace < space ? line[brace..space] : "";
            var value = line[(space + 1)..].Split(' ')[0];
            return (name, labels, double.Parse(value, CultureInfo.InvariantCulture));
        })
        .ToArray());
}
