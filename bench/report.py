"""The benchmark's Markdown table and bar chart.

results[column][mtu][metric] is a number or, when the step failed, the reason
(a string).  Columns are "loopback" then the tools; each tool's cell also shows
its ratio to slirp4netns and to the loopback baseline at the same MTU.
"""

from __future__ import annotations

from pathlib import Path

# key, label, unit, number format
METRICS = [
    ("g2h", "iperf3 guest→host (gateway)", "Gbit/s", "{:.2f}"),
    ("h2g", "iperf3 host→guest (gateway, -R)", "Gbit/s", "{:.2f}"),
    ("fwd", "iperf3 host→guest (forwarded port)", "Gbit/s", "{:.2f}"),
    ("udp_g2h", "UDP delivered guest→host (gateway)", "Gbit/s", "{:.2f}"),
    ("udp_h2g", "UDP delivered host→guest (gateway, -R)", "Gbit/s", "{:.2f}"),
    ("udp_fwd", "UDP delivered host→guest (forwarded port)", "Gbit/s", "{:.2f}"),
    ("udp_loss_g2h", "UDP loss at 1 Gbit/s offered, guest→host", "%", "{:.1f}"),
    ("udp_loss_h2g", "UDP loss at 1 Gbit/s offered, host→guest", "%", "{:.1f}"),
    ("lat_p50", "TCP 1-byte RR latency, median", "µs", "{:.0f}"),
    ("lat_p99", "TCP 1-byte RR latency, p99", "µs", "{:.0f}"),
    ("conn_rate", "short connections guest→host", "conn/s", "{:.0f}"),
    ("cpu_per_gib", "daemon CPU per GiB (the iperf3 runs)", "s/GiB", "{:.2f}"),
    ("rss_idle", "daemon RSS, idle", "MiB", "{:.1f}"),
    ("rss_1k", "daemon RSS, 1,000 open connections", "MiB", "{:.1f}"),
    ("ready_ms", "exec until the namespace is configured (pasta's readiness)", "ms", "{:.0f}"),
]
# chart panels: y label, then (metric, bar label)
CHARTED = [("iperf3, Gbit/s", [("g2h", "guest→host"), ("h2g", "host→guest (-R)"), ("fwd", "forwarded port")]),
           ("UDP delivered, Gbit/s", [("udp_g2h", "guest→host"), ("udp_h2g", "host→guest (-R)"),
                                      ("udp_fwd", "forwarded port")]),
           ("TCP RR latency, µs", [("lat_p50", "median"), ("lat_p99", "p99")]),
           ("short connections/s", [("conn_rate", "guest→host")])]
MAX_REASON = 60
# rows whose cells also show the ratio to the best peer (the higher of the
# other tools of the same family, -v6 with -v6), as issue 17's UDP goal has it
BEST_PEER = ("udp_g2h", "udp_h2g", "udp_fwd")


def cell(value, fmt: str) -> str:
    """A number formatted, "—" for nothing, or a failure reason (shortened, pipes escaped) in italics."""
    if isinstance(value, (int, float)):
        return fmt.format(value)
    if value is None:
        return "—"
    reason = str(value).replace("|", "/").replace("\n", " ")
    return f"*{reason[:MAX_REASON]}{'…' if len(reason) > MAX_REASON else ''}*"


def ratio(value, base) -> str:
    """value/base as "0.42×", or "" when either is not a number."""
    if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base:
        return f"{value / base:.2f}×"
    return ""


def tool_cell(value, fmt: str, base, base_label: str, lo, peer=None) -> str:
    """A tool's cell: the value and its ratios to its base tool, loopback and
    (for BEST_PEER rows) the best other tool."""
    ratios = [f"{r} {base_label}" for r in [ratio(value, base)] if r] + [f"{r} lo" for r in [ratio(value, lo)] if r]
    ratios += [f"{r} best peer" for r in [ratio(value, peer)] if r]
    return cell(value, fmt) + (f" ({', '.join(ratios)})" if ratios else "")


def base_tool(tool: str) -> tuple[str, str]:
    """The tool a tool's cell is compared with, and its label: pasta for
    slirpd-pasta, slirp4netns-v6 for the -v6 runs, slirp4netns for the rest."""
    if tool == "slirpd-pasta":
        return "pasta", "pasta"
    return ("slirp4netns-v6" if tool.endswith("-v6") else "slirp4netns"), "s4n"


def base_value(results: dict, tool: str, mtu: int, key: str):
    """The base tool's value (base_tool()), None for the base itself."""
    base, _ = base_tool(tool)
    if tool == base:
        return None
    return results.get(base, {}).get(mtu, {}).get(key)


def best_peer(results: dict, tool: str, mtu: int, key: str):
    """The highest value of key among the other tools run like tool (-v6
    among -v6; slirpd's peers are the tools that are not slirpd, in any of
    its modes), None if none has a number."""
    v6 = tool.endswith("-v6")
    values = [results[t].get(mtu, {}).get(key) for t in results
              if t not in ("loopback", tool) and t.endswith("-v6") == v6
              and not (tool.startswith("slirpd") and t.startswith("slirpd"))]
    values = [v for v in values if isinstance(v, (int, float))]
    return max(values) if values else None


def markdown(results: dict, mtus: list[int], notes: list[str]) -> str:
    """The whole report: the table, what the ratios mean, machine and versions."""
    tools = [name for name in results if name != "loopback"]
    lines = ["| metric | MTU | loopback | " + " | ".join(tools) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in tools) + " |"]
    for key, label, unit, fmt in METRICS:
        for mtu in mtus:
            lo = results["loopback"][mtu].get(key)
            cells = [tool_cell(results[t][mtu].get(key), fmt, base_value(results, t, mtu, key), base_tool(t)[1], lo,
                               best_peer(results, t, mtu, key) if key in BEST_PEER else None)
                     for t in tools]
            lines.append(f"| {label}, {unit} | {mtu} | {cell(lo, fmt)} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios: the tool's value divided by slirp4netns's (s4n) and by the loopback baseline (lo), "
              "same MTU; for latency, CPU and RSS lower is better.  Loopback: iperf3 and tcpbench client and "
              "server both on 127.0.0.1 (its MTU does not change), \"forwarded port\" compares with its "
              "guest→host run.  UDP: iperf3 -u -l 1400 (1400-byte datagrams), -b 0 for \"delivered\" (the sender's "
              "rate times 1 - the receiver's loss), -b 1G for the loss rows; \"best peer\": the ratio to the best "
              "other tool of the row.  Short connections: connect, send 1 byte, read the echo, close.  CPU: the "
              "daemon's process tree over the iperf3 runs that moved data.  slirp4netns and slirpd: gateway "
              "10.0.2.2, forward by the API socket's add_hostfwd; their -v6 runs: -6, servers on ::1 reached "
              "at fd00::2, forward from [::1] to the guest's IPv6 address (slirp4netns's API refuses it), "
              "ratios to slirp4netns-v6.  pasta: gateway = the host's default "
              "gateway, copied (--map-host-loopback default), forward by -t; a connection from the host's "
              "loopback to a -t port is spliced socket to socket, not sent over the tap.  slirpd-pasta: slirpd run as "
              "pasta, with pasta's argv, ratios to pasta (through the tap both ways).", ""]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def chart(results: dict, mtus: list[int], path: Path):
    """Grouped bars: one column of panels per MTU, one row per CHARTED group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(results)
    fig, axes = plt.subplots(len(CHARTED), len(mtus), figsize=(5 * len(mtus), 3.2 * len(CHARTED)), squeeze=False)
    width = 0.8 / len(columns)
    for col, mtu in enumerate(mtus):
        for row, (ylabel, bars) in enumerate(CHARTED):
            ax = axes[row][col]
            for i, name in enumerate(columns):
                values = [results[name][mtu].get(key) for key, _ in bars]
                xs = [k + (i - (len(columns) - 1) / 2) * width for k in range(len(bars))]
                ax.bar(xs, [v if isinstance(v, (int, float)) else 0 for v in values], width, label=name)
                for x, v in zip(xs, values):
                    if not isinstance(v, (int, float)):
                        ax.text(x, 0, "failed", ha="center", va="bottom", fontsize=7, rotation=90)
            ax.set_xticks(range(len(bars)), [label for _, label in bars], fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_title(f"MTU {mtu}", fontsize=9)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncol=len(columns), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)
