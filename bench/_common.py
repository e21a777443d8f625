"""Small helpers shared by the benchmarks: summary statistics, RSS, and a plain-text table."""

from __future__ import annotations

import statistics
from pathlib import Path


def vmrss_mb(pid: int | str = "self") -> float:
    """Resident set size from /proc/<pid>/status (VmRSS), in MB (MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_parts_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and its parts (RssAnon: heap and GL buffers; RssFile: mapped files such as fonts and .so)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(line.split()[1]) / 1024
    return out


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); enough for the 5-50 samples these benchmarks take."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary(xs: list[float], scale: float = 1.0) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "median": statistics.median(xs) * scale,
        "p90": pct(xs, 0.9) * scale,
        "min": min(xs) * scale,
        "max": max(xs) * scale,
    }


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A fixed-width table; the last column (the reference) is left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    first = max(len(str(r[0])) for r in [header, *rows])
    widths[0] = first

    def fmt(r):
        cells = [str(r[0]).ljust(widths[0])]
        cells += [str(c).rjust(w) for c, w in zip(r[1:-1], widths[1:-1], strict=True)]
        cells.append(str(r[-1]))
        return "  ".join(cells)

    lines = [title, fmt(header), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)
