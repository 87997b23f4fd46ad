"""The results as markdown: the figures table, the machine, the import offenders; RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from common import REFERENCE, Row

BEGIN = "<!-- bench:begin (bench/run.py --write replaces everything up to bench:end) -->"
END = "<!-- bench:end -->"


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "req/s":
        return f"{value / 1000:.1f}k"
    if unit == "KiB":
        return f"{value:.1f} KiB"
    if unit == "×":
        return f"{value:.2f}×"
    if unit == "B":
        return f"{value / 1000:.1f} kB" if value >= 1000 else f"{value:.0f} B"
    return f"{value:g} {unit}"


def _ratio(value: float, ref: float, higher_is_better: bool) -> str:
    ratio = value / ref
    if abs(ratio - 1) < 0.02:
        return f"{ratio:.2f}× (same)"
    better = ratio > 1 if higher_is_better else ratio < 1
    return f"{ratio:.2f}× ({'better' if better else 'worse'})"


def ratio_text(row: Row) -> str:
    if row.ref is None or not row.values:
        return "–"
    text = _ratio(row.median, row.ref, row.higher_is_better)
    if row.unit == "s" and row.ref_label.startswith("bare aiohttp"):
        others = [REFERENCE["start_mountebank_s"], REFERENCE["start_mockoon_s"]]
        text += "".join(f"; {row.median / ref:.2f}× {label.split()[0]}" for ref, label in others)
    return text


def control_text(row: Row, by_key: dict[str, Row]) -> str:
    control = by_key.get(row.control or "")
    if control is None or not row.values or not control.values:
        return "–"
    return _ratio(row.median, control.median, row.higher_is_better)


def figures_table(rows: list[Row]) -> str:
    by_key = {row.key: row for row in rows}
    lines = [
        "| Measure | Median | Spread (min–max) | n | Reference | Ratio to reference "
        "| Ratio to control |",
        "| --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for row in rows:
        if not row.values:
            lines.append(f"| {row.label} | fails | – | 0 | {row.ref_label or '–'} | – | – |")
            continue
        spread = f"{fmt(min(row.values), row.unit)} – {fmt(max(row.values), row.unit)}"
        lines.append(
            f"| {row.label} | {fmt(row.median, row.unit)} | {spread} | {len(row.values)} "
            f"| {row.ref_label or '–'} | {ratio_text(row)} | {control_text(row, by_key)} |"
        )
    return "\n".join(lines)


def notes(rows: list[Row]) -> str:
    return "\n".join(
        f"- *{row.label}*: {row.note or row.failed}" for row in rows if row.note or row.failed
    )


def machine_table(info: dict[str, str]) -> str:
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in info.items()]
    return "\n".join(lines)


def imports_section(details: dict[str, Any]) -> str:
    out = []
    titles = {
        "help": "`sandbox --help`",
        "down": "what `sandbox status` and `sandbox down` load "
        "(`sandbox down` now: `sandbox.quick`, `sandbox.runtime.manage`; `status` adds typer)",
        "start": "what a supervisor loads before its 50 stubs serve (`sandbox.api`, "
        "`services.http`, `profile.loader`, `runtime.supervisor`)",
    }
    for key, title in titles.items():
        report = details.get(key)
        if report is None:
            continue
        heavy = ", ".join(report["heavy"]) or "none"
        modules = ", ".join(f"`{name}` {ms:.0f} ms" for name, ms in report["modules"])
        out.append(
            f"**{title}**: {report['total_ms']:.0f} ms of imports in all (`-X importtime` "
            f"inflates them); heavy libraries loaded: {heavy}. Slowest single modules (own "
            f"time): {modules}.\n"
        )
        out.append("| package | import time (own, summed) |\n| --- | ---: |")
        out += [f"| `{name}` | {ms:.1f} ms |" for name, ms in report["packages"]]
        out.append("")
    steps = details.get("rss")
    if steps:
        total = sum(mib for _, mib in steps)
        out.append(
            f"**Memory by import**: the RSS each import of a supervisor adds, in a fresh "
            f"interpreter ({total:.1f} MiB after the last, before anything serves):\n"
        )
        out.append("| import | RSS added |\n| --- | ---: |")
        out += [f"| `{name}` | {mib:+.1f} MiB |" for name, mib in steps]
        out.append("")
    return "\n".join(out)


def document(
    rows: list[Row], info: dict[str, str], details: dict[str, Any], command: str, when: str
) -> str:
    parts = [
        f"Recorded {when} with `{command}` (from the repository root).",
        "",
        "## Machine",
        "",
        machine_table(info),
        "",
        "## Figures",
        "",
        "Medians over the runs; spread is min–max; n is the number of samples. Ratio to "
        'reference = our median / the figure in FIELD-NOTES.md ("Numbers to beat", same '
        "machine, 2 cores); start rows also give it for mountebank (0.51 s) and Mockoon "
        "(0.87 s). Ratio to control = our median / the median of the matching `control` row, "
        "which re-measures the bare aiohttp reference here, in the same session, interleaved "
        "with ours. For times, memory and latency below 1 is better; for req/s above 1.",
        "",
        figures_table(rows),
        "",
        notes(rows),
        "",
        "## Imports",
        "",
        imports_section(details),
    ]
    return "\n".join(parts).rstrip() + "\n"


def write_results(path: Path, body: str) -> None:
    """Replace the generated block of `path` (or create the file); text outside it stays."""
    block = f"{BEGIN}\n{body}{END}\n"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
        if pattern.search(text):
            path.write_text(pattern.sub(lambda _: block, text, count=1), encoding="utf-8")
            return
        path.write_text(text.rstrip() + "\n\n" + block, encoding="utf-8")
        return
    path.write_text(f"# Benchmark results\n\n{block}", encoding="utf-8")
