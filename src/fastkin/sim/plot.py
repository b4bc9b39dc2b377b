"""The simulator's PNG: matplotlib's object API (no pyplot, so no global state). Needs the ``plot`` extra."""
from __future__ import annotations

import os

import numpy as np

from .scenario import _clock

_MODE_COLORS = {"PROVISIONED": "#f2f2f2", "ON_DEMAND": "#e3f1e3"}


def plot_result(result, path) -> None:
    """Four panels over engine time: write throughput (offered, accepted, capacity), throttled
    writes, open shards (with the offered load per shard against the 500 KiB/s split threshold),
    consumer lag. Timed actions and load changes are marked across all panels; the background
    shows the capacity mode. Uses the object API (no pyplot), so it never touches global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    sc = result.scenario
    fig = Figure(figsize=(12, 11), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_w, ax_t, ax_s, ax_l = fig.subplots(4, 1, sharex=True, height_ratios=[3, 1.6, 2, 1.6])
    multi = len(sc.streams) > 1
    minutes = sc.duration / 60.0
    unit = 60.0 if minutes >= 3 else 1.0
    tname = "min" if unit == 60.0 else "s"
    colors = ["#1f77b4", "#9467bd", "#8c564b", "#17becf"]
    for si, st in enumerate(sc.streams):
        pre = f"{st.name}: " if multi else ""
        c = colors[si % len(colors)]
        x = result.column("time_s", st.name) / unit
        xe = x + result.resolution / unit                     # period ends, for step plots
        off = result.column("offered_bytes_per_s", st.name) / 1e6
        acc = result.column("accepted_bytes_per_s", st.name) / 1e6
        shards = result.column("open_shards", st.name)
        cap = shards * 1024 * 1024 / 1e6
        thr = result.column("throttled_records_per_s", st.name)
        offr = result.column("offered_records_per_s", st.name)
        ax_w.plot(xe, off, color="#d62728", lw=1.4, ls="--", label=f"{pre}offered")
        ax_w.plot(xe, acc, color=c, lw=2.0, label=f"{pre}accepted")
        ax_w.fill_between(xe, acc, off, where=off > acc * 1.001 + 1e-9, color="#d62728", alpha=0.15, lw=0,
                          label=f"{pre}throttled (offered - accepted)")
        ax_w.step(xe, cap, where="post", color="black", lw=1.0, ls=":", label=f"{pre}write capacity (shards x 1 MiB/s)")
        ax_t.fill_between(xe, 0, thr, step=None, color="#d62728", alpha=0.6, lw=0, label=f"{pre}throttled records/s")
        top = float(thr.max()) if len(thr) else 0.0
        for a, b in result.throttle_intervals(st.name):
            if b + result.resolution - a >= max(10, sc.duration / 60):
                ax_t.annotate("", xy=(a / unit, top * 1.08), xytext=((b + result.resolution) / unit, top * 1.08),
                              arrowprops=dict(arrowstyle="<->", color="#a01010", lw=1.0))
                ax_t.text((a + b + result.resolution) / 2 / unit, top * 1.12,
                          f"{pre}throttled {_clock(a)}-{_clock(b + result.resolution)}", ha="center", va="bottom",
                          fontsize=9, color="#a01010", fontweight="bold")
        ax_t.set_ylim(0, max(1.0, top * 1.35))
        pct = 100.0 * thr.sum() / offr.sum() if offr.sum() else 0.0
        ax_t.text(0.995, 0.92 - 0.15 * si, f"{pre}{pct:.1f} % of offered records throttled", transform=ax_t.transAxes,
                  ha="right", va="top", fontsize=9, color="#a01010")
        ax_s.step(xe, shards, where="post", color="#2ca02c", lw=2.2, label=f"{pre}open shards")
        prev = None
        for xi, n in zip(x, shards):
            if n != prev:
                ax_s.annotate(f"{int(n)}", (xi, n), textcoords="offset points", xytext=(3, 4), fontsize=9,
                              color="#1b6e1b", fontweight="bold")
                prev = n
        per = (off * 1e6 / np.maximum(shards, 1)) / 1e6
        if si == 0:
            ax_p = ax_s.twinx()
        ax_p.plot(xe, per, color="#ff7f0e", lw=1.2, label=f"{pre}offered MB/s per shard")
        for cr in result.consumers.values():
            if cr.stream == st.name:
                xs = np.arange(len(cr.lag_ms)) / unit
                ax_l.plot(xs, cr.lag_ms / 1000.0, lw=1.4, label=f"{cr.name} ({cr.stream})")
    if any("ON_DEMAND" in set(result.column("mode", st.name)) for st in sc.streams):
        thr_split = 500 * 1024 / 1e6
        ax_p.axhline(thr_split, color="#ff7f0e", ls=":", lw=1.0)
        ax_p.text(0.005, thr_split, " on-demand split threshold 500 KiB/s per shard", color="#c25e00", fontsize=8,
                  va="bottom", transform=ax_p.get_yaxis_transform())
    ax_p.set_ylabel("offered MB/s per shard", color="#c25e00")
    ax_p.set_ylim(bottom=0)
    ax_p.tick_params(axis="y", colors="#c25e00")

    # capacity-mode background and the timed actions, across every panel
    st0 = sc.streams[0].name
    modes = result.column("mode", st0)
    x0 = result.column("time_s", st0)
    spans, start = [], 0
    for i in range(1, len(modes) + 1):
        if i == len(modes) or modes[i] != modes[start]:
            spans.append((x0[start] / unit, (x0[i - 1] + result.resolution) / unit, modes[start]))
            start = i
    for ax in (ax_w, ax_t, ax_s, ax_l):
        for a, b, md in spans:
            ax.axvspan(a, b, color=_MODE_COLORS.get(md, "white"), zorder=0, lw=0)
        ax.grid(True, color="#cccccc", lw=0.5)
        ax.set_xlim(0, sc.duration / unit)
    for a, b, md in spans:
        ax_w.text((a + b) / 2, 1.01, md.replace("_", "-").lower() + " mode", transform=ax_w.get_xaxis_transform(),
                  ha="center", va="bottom", fontsize=10, color="#555555", fontweight="bold")
    marks = [(a.at, a.describe(), "#333333") for a in sc.actions]
    for p in sc.producers:
        for at, v, kind in p.schedule:
            if at > 0:
                label = f"load -> {v / 1e6:g} MB/s" if kind == "bytes" else f"load -> {v:g} records/s"
                marks.append((at, f"{p.name}: {label}" if len(sc.producers) > 1 else label, "#d62728"))
    errors = {e.time_s for e in result.events if e.kind == "error"}
    for at, label, col in marks:
        for ax in (ax_w, ax_t, ax_s, ax_l):
            ax.axvline(at / unit, color=col, ls="--", lw=1.0, alpha=0.8)
        ax_w.annotate(_clock(at) + " " + label + (" (FAILED)" if at in errors else ""), (at / unit, 0.97),
                      xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points", ha="left",
                      va="top", fontsize=9, color=col, fontweight="bold",
                      bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.8))

    ax_w.set_ylabel("write throughput (MB/s)")
    ax_w.set_ylim(0, None)
    ax_w.legend(loc="center left", fontsize=8, framealpha=0.9)
    ax_t.set_ylabel("throttled writes\n(records/s)")
    ax_s.set_ylabel("open shards", color="#1b6e1b")
    ax_s.set_ylim(0, None)
    ax_s.yaxis.set_major_locator(MaxNLocator(integer=True))
    h1, l1 = ax_s.get_legend_handles_labels()
    h2, l2 = ax_p.get_legend_handles_labels()
    ax_s.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8, framealpha=0.9)
    ax_l.set_ylabel("consumer lag (s)\n(MillisBehindLatest)")
    worst = max((c.lag_ms.max() for c in result.consumers.values() if len(c.lag_ms)), default=0.0) / 1000.0
    ax_l.set_ylim(0, max(1.0, worst * 1.15))
    if result.consumers:
        ax_l.legend(loc="upper left", fontsize=8, framealpha=0.9)
        if worst == 0:
            ax_l.text(0.5, 0.5, "lag 0 throughout: every poll reads up to the tip of each shard",
                      transform=ax_l.transAxes, ha="center", va="center", color="#555555", fontsize=9)
    else:
        ax_l.text(0.5, 0.5, "no consumers in this scenario", transform=ax_l.transAxes, ha="center", color="#777777")
    ax_l.set_xlabel(f"engine time ({tname})")
    if unit == 60.0:
        ax_l.xaxis.set_major_locator(MaxNLocator(nbins=min(30, int(minutes) + 1), integer=True))
    title = f"fastkin simulate: {sc.name}"
    fig.suptitle(title + (f"\n{sc.description}" if sc.description else ""), fontsize=12)
    fig.savefig(os.fspath(path))


