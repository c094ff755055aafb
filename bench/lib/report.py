"""Turns runs into the published figures: per tool the median, min and max of
each metric; per peer the ratio to warden computed run by run (run i of warden
against run i of the peer, which ran right after it) and summarised the same
way; the issue's targets, met or not; and the Markdown for BENCHMARKS.md.

A run that hit its time cap is *censored*: its time is a lower bound (shown
">"), its rate an upper bound ("<"), and so is any ratio computed from it.
"""

import statistics

PEERS = ("fail2ban", "fail2ban-rs")


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarise(workload, runs_by_tool, skipped, extra=None):
    """The JSON for one workload: its metrics, every run, summaries and ratios."""
    tools = {}
    for tool, runs in runs_by_tool.items():
        ok = [r for r in runs if "error" not in r]
        entry = {"runs": runs}
        if ok:
            entry["summary"] = {m.key: spread([r[m.key] for r in ok]) for m in workload.metrics if m.key in ok[0]}
            entry["censored"] = any(r.get("timed_out") for r in ok)
        errors = [r["error"] for r in runs if "error" in r]
        if errors:
            entry["errors"] = errors
        tools[tool] = entry
    for tool, reason in skipped.items():
        tools[tool] = {"skipped": reason}
    ratios = {}
    base = tools.get("warden", {}).get("runs", [])
    for peer in PEERS:
        peer_runs = tools.get(peer, {}).get("runs")
        if not peer_runs or not base:
            continue
        per_metric = {}
        for m in workload.metrics:
            values, censored = [], False
            for w, p in zip(base, peer_runs):
                if "error" in w or "error" in p or not w.get(m.key) or not p.get(m.key):
                    continue
                values.append(p[m.key] / w[m.key] if m.better == "lower" else w[m.key] / p[m.key])
                censored |= bool(p.get("timed_out"))
            if values:
                per_metric[m.key] = dict(spread(values), lower_bound=censored)
        ratios[peer] = per_metric
    out = {"title": workload.title, "metrics": [m.as_json() for m in workload.metrics], "tools": tools,
           "ratios": ratios}
    if extra:
        out.update(extra)
    return out


# --- targets ------------------------------------------------------------
def _ratio(results, wl, peer, metric):
    r = results.get(wl, {}).get("ratios", {}).get(peer, {}).get(metric)
    return r and r["median"]


def _warden(results, wl, metric, stat="median"):
    s = results.get(wl, {}).get("tools", {}).get("warden", {}).get("summary", {}).get(metric)
    return s and s[stat]


def targets(results):
    """The issue's targets, each with the measured value and whether it is met
    (None: not measured in this run)."""
    out = []

    def add(workload, target, value, met, shown):
        out.append({"workload": workload, "target": target, "value": value,
                    "met": None if value is None else bool(met), "shown": shown if value is not None else "not measured"})

    r = _ratio(results, "filter_throughput", "fail2ban", "lines_per_s")
    add("a", "≥ 60× the lines/s of fail2ban-regex", r, r and r >= 60, f"{r:.1f}×" if r else "")
    r = _ratio(results, "filter_throughput", "fail2ban", "peak_rss_mib")
    add("a", "≤ 1/10 of fail2ban-regex's peak RSS", r, r and r >= 10, f"1/{r:.1f}" if r else "")
    r = _ratio(results, "filter_throughput", "fail2ban-rs", "lines_per_s")
    add("a", "≥ 2× the lines/s of fail2ban-rs", r, r and r >= 2, f"{r:.2f}×" if r else "")
    det = results.get("filter_throughput", {}).get("detection", {})
    if "fail2ban" in det:
        missed = det["fail2ban"]["hosts_missed_by_warden"]
        ok = missed == 0 and det["warden"]["failures"] >= det["fail2ban"]["failures"]
        add("a", "detects at least what fail2ban detects", missed, ok,
            f"{det['warden']['failures']:,} vs {det['fail2ban']['failures']:,} failures; "
            f"{missed} of fail2ban's hosts missed")
    else:
        add("a", "detects at least what fail2ban detects", None, None, "")
    r = _ratio(results, "daemon_ingest", "fail2ban", "cpu_s")
    add("b", "≥ 30× fewer CPU seconds than fail2ban-server", r, r and r >= 30, f"{r:.1f}×" if r else "")
    v = _warden(results, "daemon_ingest", "peak_rss_mib", "max")
    add("b", "warden's RSS < 64 MB", v, v is not None and v * 1.048576 < 64, f"{v:.1f} MiB (max)" if v else "")
    v = _warden(results, "idle", "cpu_percent", "max")
    add("c", "~0 % CPU idle (< 0.1 %)", v, v is not None and v < 0.1, f"{v:.3f} % (max)" if v is not None else "")
    r = _ratio(results, "ban_enforcement", "fail2ban", "wall_s")
    lb = results.get("ban_enforcement", {}).get("ratios", {}).get("fail2ban", {}).get("wall_s", {}).get("lower_bound")
    add("d", "≥ 50× faster than fail2ban's ipset action", r, r and r >= 50,
        (f"{'>' if lb else ''}{r:,.0f}×" if r else ""))
    v = _warden(results, "ban_enforcement", "peak_processes", "max")
    add("d", "at most 1 process at any time", v, v is not None and v <= 1, f"{v:.0f} (max)" if v else "")
    v = _warden(results, "restart", "restore_s", "max")
    add("e", "all bans enforced again < 2 s after a restart", v, v is not None and v < 2, f"{v:.2f} s (max)" if v else "")
    return out


# --- Markdown -------------------------------------------------------------
def _fmt(metric, value):
    return metric["fmt"].format(value)


def _cell(metric, summary, censored):
    # A capped run: what it cost so far is a lower bound, what it achieved an upper one.
    mark = ("" if not censored else ">" if metric["better"] == "lower" else "<")
    unit = f" {metric['unit']}" if metric["unit"] and metric["unit"] not in ("lines/s", "bans/s") else ""
    return (f"{mark}{_fmt(metric, summary['median'])}{unit} "
            f"({_fmt(metric, summary['min'])}–{_fmt(metric, summary['max'])})")


def markdown(results, formats):
    """`formats`: {workload key: {metric key: format string}}."""
    lines = []
    meta = results["meta"]
    m = meta["machine"]
    lines.append(f"Command: `{meta['command']}`, started {meta['started']}.")
    lines.append("")
    lines.append(f"Machine: {m.get('nproc')} CPUs ({m.get('cpu', 'model not reported')}), {m.get('ram_gib')} GiB RAM, "
                 f"Linux {m.get('kernel')}, {m.get('os', '')}; load average at start "
                 f"{m['loadavg_start'][0]:.1f}, at end {m.get('loadavg_end', m['loadavg_start'])[0]:.1f}.")
    lines.append("")
    versions = ", ".join(f"{tool}: {v}" for tool, v in meta["versions"].items() if v)
    lines.append(f"Versions: {versions}." + "".join(f" {tool} skipped: {why}." for tool, why in
                                                   meta.get("skipped_tools", {}).items()))
    lines.append("")
    lines.append(f"Runs: {meta['runs']} per tool per workload, alternating tools run by run"
                 f"{' (quick smoke workload)' if meta['quick'] else ''}. Cells: median (min–max). "
                 "Ratios: warden's advantage, computed run by run (>1: warden ahead).")
    lines.append("")
    for key, wl in results["workloads"].items():
        lines.append(f"### {wl['title']}")
        lines.append("")
        if wl.get("description"):
            lines.append(wl["description"])
            lines.append("")
        metrics = [dict(m, fmt=formats[key][m["key"]]) for m in wl["metrics"]]
        lines.append("| tool | " + " | ".join(m["label"] for m in metrics) + " | notes |")
        lines.append("|---|" + "---:|" * len(metrics) + "---|")
        for tool, entry in wl["tools"].items():
            if "skipped" in entry:
                lines.append(f"| {tool} | " + " | ".join("–" for _ in metrics) + f" | skipped: {entry['skipped']} |")
                continue
            if "summary" not in entry:
                lines.append(f"| {tool} | " + " | ".join("–" for _ in metrics) +
                             f" | failed: {'; '.join(entry.get('errors', []))[:200]} |")
                continue
            cells = [_cell(m, entry["summary"][m["key"]], entry.get("censored")) if m["key"] in entry["summary"]
                     else "–" for m in metrics]
            lines.append(f"| {tool} | " + " | ".join(cells) + f" | {_notes(key, entry)} |")
        lines.append("")
        for peer, ratios in wl.get("ratios", {}).items():
            parts = []
            for m in metrics:
                r = ratios.get(m["key"])
                if r:
                    lb = ">" if r["lower_bound"] else ""
                    parts.append(f"{m['label']} {lb}{r['median']:,.1f}× ({r['min']:,.1f}–{r['max']:,.1f})")
            if parts:
                lines.append(f"- warden vs {peer}: " + "; ".join(parts))
        if wl.get("ratios"):
            lines.append("")
        if key == "filter_throughput" and wl.get("detection"):
            lines.append("| detection | counted failures | distinct hosts |")
            lines.append("|---|---:|---:|")
            for tool, d in wl["detection"].items():
                lines.append(f"| {tool} | {d['failures']:,} | {d['hosts']:,} |")
            lines.append("")
    lines.append("### Targets (issue 7)")
    lines.append("")
    lines.append("| workload | target | measured | met |")
    lines.append("|---|---|---|---|")
    for t in results["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| ({t['workload']}) | {t['target']} | {t['shown']} | {met} |")
    lines.append("")
    return "\n".join(lines)


def _notes(key, entry):
    ok = [r for r in entry["runs"] if "error" not in r]
    notes = []
    if key == "daemon_ingest":
        bans = [r["bans"] for r in ok]
        notes.append(f"bans {min(bans):,}–{max(bans):,} of {ok[0]['expected_bans']:,}")
        if "bans_reported" in ok[0]:
            notes.append(f"reported by `warden bans`: {ok[-1]['bans_reported']:,}")
        notes.append(f"start-up {statistics.median(r['startup_s'] for r in ok):.2f} s")
    if key in ("ban_enforcement", "restart"):
        enforced = [r["enforced"] for r in ok]
        notes.append(f"enforced {min(enforced):,}–{max(enforced):,} of {ok[0]['expected']:,}")
        extra = [r.get("extrapolated_wall_s") or r.get("extrapolated_s") for r in ok]
        extra = [e for e in extra if e]
        if extra:
            notes.append(f"capped; all bans would take ~{statistics.median(extra):,.0f} s at this rate")
    if key == "ban_enforcement":
        # Summed over runs: the commands seen in the most samples come first.
        seen = {}
        for r in ok:
            for command, samples in r.get("child_processes_seen", {}).items():
                seen[command] = seen.get(command, 0) + samples
        if seen:
            top = sorted(seen, key=seen.get, reverse=True)[:3]
            notes.append("child processes seen: " + ", ".join(f"`{c}`" for c in top))
    if key == "idle":
        notes.append(f"{ok[0]['mode']}, {max(r['processes'] for r in ok)} process(es)")
    if entry.get("errors"):
        notes.append(f"{len(entry['errors'])} failed run(s)")
    return "; ".join(notes)
