"""The HTML report of ``python -m conformance --report PATH``: one self-contained file.

It holds the summary matrix (check x backend: the worst difference from the
reference framework in ulps, or FAIL) and, for every elementwise activation, a
plot of its curve on every backend overlaid with the reference's, and a plot
of the float32 error against the exact value (mpmath, ``conformance.accuracy``)
of xpnn on every backend and of the reference framework itself, in the manner
of the plots of the torch.nn docs.
The plots are inline SVG: no plotting library and no network are needed.
"""
from __future__ import annotations

import fnmatch
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from xpnn.conformance import accuracy, runner
from xpnn.conformance.backends import Backend
from xpnn.conformance.cases import CASES, Case

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
REFERENCE_COLOR = "#000000"

Series = tuple[str, np.ndarray, np.ndarray, str]


def plotted_cases(only: str = "*") -> list[Case]:
    """The first elementwise case of each activation (no extra arrays, any rank) whose label
    matches ``only`` (``--only``'s glob)."""
    seen, found = set(), []
    for case in CASES:
        if case.min_ndim == 0 and case.extra is None and case.function not in seen and fnmatch.fnmatch(case.label, only):
            seen.add(case.function)
            found.append(case)
    return found


def curves(backends: Sequence[Backend], points: int = 121, only: str = "*") -> list[dict[str, Any]]:
    """For each plotted case: the inputs, the float64 reference and every backend's float32 values."""
    found = []
    for case in plotted_cases(only):
        low, high = max(case.domain[0], -6.0), min(case.domain[1], 6.0)
        x = np.linspace(low, high, points)
        reference = runner.call_reference(case, x, {}, "float64")
        values = {}
        for backend in backends:
            if "float32" not in backend.dtypes:
                continue
            try:
                out = runner.call_xpnn(case, backend, backend.asarray(x, "float32"), {}, "float32")
                values[backend.label] = backend.to_numpy(out).astype(np.float64)
            except Exception:  # noqa: BLE001 - a failing backend is shown in the matrix, not plotted
                continue
        errors = _errors_vs_exact(case, backends, x)
        found.append({"label": case.label, "framework": case.framework, "x": x, "reference": reference,
                      "values": values, "errors": errors})
    return found


def _errors_vs_exact(case: Case, backends: Sequence[Backend], x: np.ndarray) -> dict[str, np.ndarray]:
    """float32 errors in ulps against mpmath at ``x`` (rounded to float32): xpnn on each backend and
    the reference framework (its own label), for the cases ``conformance.accuracy`` defines."""
    exact_case = next((c for c in accuracy.CASES if c.label == case.label), None)
    if exact_case is None:
        return {}
    x32 = x.astype(np.float32).astype(np.float64)
    true = accuracy.true_values(exact_case, x32)
    with np.errstate(all="ignore"):
        errors = {"reference": accuracy.ulp_error(accuracy.call_reference(exact_case, x32, "float32"), true, "float32")}
        for backend in backends:
            if "float32" in backend.dtypes:
                try:
                    got = accuracy.call_xpnn(exact_case, backend, x32, "float32")
                except Exception:  # noqa: BLE001 - a failing backend is shown in the matrix, not plotted
                    continue
                errors[backend.label] = accuracy.ulp_error(got, true, "float32")
    return errors


#: Width of a legend character, in the plots' units: the legend's columns are sized by its longest
#: name, so no name runs into the next or off the plot (in Chromium, 11 px sans-serif: 5.5 per
#: character for "xpnn on array_api_strict", 7.6 for the wide letters of "numpy").
_LEGEND_CHARACTER = 6.2


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Ticks in ``[low, high]`` at multiples of a round step (1, 2, 2.5 or 5 times a power of ten):
    the largest step that still gives ``count - 1`` ticks or more, rounded so that they print short."""
    magnitude = 10.0 ** np.floor(np.log10((high - low) / max(count - 1, 1)))
    steps = [m * magnitude * scale for scale in (0.1, 1.0) for m in (1.0, 2.0, 2.5, 5.0)] + [10 * magnitude]

    def ticks(step: float) -> list[float]:
        first, last = int(np.ceil(low / step - 1e-9)), int(np.floor(high / step + 1e-9))
        return [float(f"{k * step:.12g}") for k in range(first, last + 1)]

    return next(ticks(step) for step in reversed(steps) if len(ticks(step)) >= count - 1 or step == steps[0])


def _svg_plot(title: str, series: list[Series], y_label: str, width: int = 440, height: int = 250) -> str:
    """A line plot as inline SVG that scales to its box: round ticks on each axis, the legend in
    rows under the x axis (never over the data), in as many columns as its longest name allows."""
    left, right, top = 64, 12, 24
    longest = max((len(name) for name, *_ in series), default=1)
    columns = max(1, int((width - left - right) // (18 + _LEGEND_CHARACTER * longest + 8)))
    legend_rows = -(-len(series) // columns)
    bottom = 34 + 14 * legend_rows
    height += 14 * legend_rows
    xs = np.concatenate([s[1] for s in series])
    ys = np.concatenate([s[2][np.isfinite(s[2])] for s in series]) if series else np.zeros(1)
    x_min, x_max = float(xs.min()), float(xs.max())
    y_min, y_max = (float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0)
    if y_max - y_min < 1e-12:
        y_min, y_max = y_min - 1.0, y_max + 1.0
    y_ticks = nice_ticks(y_min, y_max)
    pad = 0.05 * (y_max - y_min)
    y_min, y_max = y_min - pad, y_max + pad
    plot_bottom = height - bottom

    def px(v: np.ndarray) -> np.ndarray:
        return left + (v - x_min) / (x_max - x_min) * (width - left - right)

    def py(v: np.ndarray) -> np.ndarray:
        return top + (y_max - v) / (y_max - y_min) * (plot_bottom - top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="plot">',
             f'<text x="{width / 2}" y="15" text-anchor="middle" class="title">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{plot_bottom - top}" class="frame"/>']
    for value in y_ticks:
        y = float(py(np.asarray(value)))
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" class="tick">{value:.4g}</text>')
    for value in nice_ticks(x_min, x_max):
        x = float(px(np.asarray(value)))
        parts.append(f'<text x="{x:.1f}" y="{plot_bottom + 15}" text-anchor="middle" class="tick">{value:.4g}</text>')
    middle = top + (plot_bottom - top) / 2
    parts.append(f'<text x="13" y="{middle}" transform="rotate(-90 13 {middle})" text-anchor="middle" '
                 f'class="tick">{html.escape(y_label)}</text>')
    column = (width - left - right) / columns
    for index, (name, sx, sy, color) in enumerate(series):
        finite = np.isfinite(sy)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(sx[finite]), py(np.clip(sy[finite], y_min, y_max))))
        dash = ' stroke-dasharray="5,4"' if color == REFERENCE_COLOR else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"{dash}>'
                     f'<title>{html.escape(name)}</title></polyline>')
        x, y = left + column * (index % columns), plot_bottom + 32 + 14 * (index // columns)
        parts.append(f'<line x1="{x:.1f}" x2="{x + 14:.1f}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" '
                     f'stroke-width="2"{dash}/><text x="{x + 18:.1f}" y="{y}" class="legend">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _matrix(results: list[dict], labels: list[str], backend_names: list[str]) -> str:
    rows = ["<table class='matrix'><tr><th>check</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in backend_names) + "</tr>"]
    for label in labels:
        cells = []
        for name in backend_names:
            found = [r for r in results if r["case"] == label and r["backend"] == name]
            if not found:
                cells.append("<td class='none'>-</td>")
            elif not all(r["passed"] for r in found):
                why = "; ".join(f"{r['dtype']}: {r.get('error') or r.get('output_problem') or 'outside tolerance'}"
                                for r in found if not r["passed"])
                cells.append(f"<td class='fail' title='{html.escape(why, quote=True)}'>FAIL</td>")
            else:
                worst = max(r["max_ulp"] for r in found)
                dtypes = ", ".join(r["dtype"] for r in found)
                cells.append(f"<td class='pass' title='{html.escape(dtypes)}'>{worst:.3g}</td>")
        rows.append(f"<tr><td class='label'>{html.escape(label)}</td>{''.join(cells)}</tr>")
    rows.append("</table>")
    return "".join(rows)


FAMILIES = ("functions", "random", "initializers", "layers", "torch_nn")


def summary_svg(results: list[dict], backend_names: list[str]) -> str:
    """The summary as an image: per family and backend, checks passed and the worst error in ulps."""
    cell, first, row_height = 130, 110, 34
    width, height = first + cell * len(backend_names) + 10, 60 + row_height * len(FAMILIES) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="system-ui,sans-serif" font-size="13">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             '<text x="10" y="22" font-size="15" font-weight="bold">xpnn conformance: checks passed (worst ulp)</text>']
    for j, name in enumerate(backend_names):
        parts.append(f'<text x="{first + cell * j + cell / 2}" y="50" text-anchor="middle" font-weight="bold">'
                     f'{html.escape(name)}</text>')
    for i, family in enumerate(FAMILIES):
        y = 60 + row_height * i
        parts.append(f'<text x="10" y="{y + 21}">{family}</text>')
        for j, name in enumerate(backend_names):
            rows = [r for r in results if r["family"] == family and r["backend"] == name]
            passed = sum(r["passed"] for r in rows)
            color = "#eeeeee" if not rows else ("#d9f2d9" if passed == len(rows) else "#f9d6d5")
            worst = max((r.get("max_ulp", float("inf")) for r in rows if r["passed"]), default=0.0)
            text = "-" if not rows else f"{passed}/{len(rows)} ({worst:.3g})"
            x = first + cell * j
            parts.append(f'<rect x="{x + 2}" y="{y + 2}" width="{cell - 4}" height="{row_height - 4}" fill="{color}"/>'
                         f'<text x="{x + cell / 2}" y="{y + 21}" text-anchor="middle">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px} h2{font-size:18px;margin-top:28px}
table.matrix{border-collapse:collapse;font-size:12px}
table.matrix th,table.matrix td{border:1px solid #ddd;padding:2px 8px;text-align:right}
table.matrix td.label,table.matrix th:first-child{text-align:left}
table.matrix td.label{font-family:monospace}
td.pass{background:#e7f6e7} td.fail{background:#f9d6d5;font-weight:bold} td.none{color:#aaa}
.summary{font-size:15px;margin:8px 0 16px} .ok{color:#1a7f1a} .bad{color:#b3261e}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px}
.activation{border:1px solid #eee;padding:6px;display:grid;grid-template-columns:1fr 1fr;gap:6px}
svg.plot{width:100%;height:auto}
svg.plot .title{font-size:13px;font-family:monospace} svg.plot .tick{font-size:11px;fill:#444}
svg.plot .legend{font-size:11px} svg.plot .frame{fill:none;stroke:#999} svg.plot .grid{stroke:#eee}
table.environment{border-collapse:collapse;font-size:13px} table.environment td{padding:1px 10px 1px 0}
table.environment td:first-child{color:#555}
ul.failures li{font-family:monospace;font-size:12px;margin:3px 0}
"""


#: The agreements a function check records besides its comparison, in words when they fail.
_AGREEMENTS = {"fast_path_agrees": "the native fast path disagrees with the written-once definition",
               "grad_agrees": "the gradients differ from the reference's"}


def describe_failure(record: dict) -> str:
    """Why a check failed, in words."""
    where = f"{record['case']} [{record['backend']}, {record['dtype']}]"
    if record.get("error"):
        return f"{where}: raised {record['error']}"
    if record.get("output_problem"):
        return f"{where}: {record['output_problem']}"
    reasons = []
    if not record.get("within_tolerance", True):
        reasons.append(f"differs from {record['reference']} by up to {record['max_ulp']:.3g} ulp (absolute "
                       f"{record['max_abs']:.3g}, relative {record['max_rel']:.3g}), beyond {record['dtype']}'s "
                       "tolerance")
    if record.get("special_mismatch"):
        reasons.append(f"{record['special_mismatch']} values differ in nan, infinity or the sign of a zero")
    reasons += [words for key, words in _AGREEMENTS.items() if record.get(key) is False]
    return f"{where}: " + "; ".join(reasons or ["failed"])


def write_html(path: str, results: list[dict], labels: list[str], backend_names: list[str],
               plotted: list[dict[str, Any]], uncovered: list[str], header: str,
               environment: dict[str, str] | None = None) -> None:
    """Write the report to ``path``: the environment it ran in, the verdict, each failure in
    words, the summary matrix and the activations' plots."""
    failures = [r for r in results if not r["passed"]]
    verdict = (f"<span class='ok'>all {len(results)} checks passed</span>" if not failures and not uncovered
               else f"<span class='bad'>{len(failures)} of {len(results)} checks failed"
                    + (f"; uncovered: {html.escape(', '.join(uncovered))}" if uncovered else "") + "</span>")
    sections = []
    for curve in plotted:
        color_of = {name: COLORS[i % len(COLORS)] for i, name in enumerate(curve["values"])}
        series = [(name, curve["x"], y, color_of[name]) for name, y in curve["values"].items()]
        series.append(("reference", curve["x"], curve["reference"], REFERENCE_COLOR))
        reference = "torch.nn.functional" if curve["framework"] == "torch" else "jax.nn"
        errors = [(reference if name == "reference" else f"xpnn on {name}", curve["x"], np.log10(1.0 + e),
                   REFERENCE_COLOR if name == "reference" else color_of.get(name, COLORS[0]))
                  for name, e in curve.get("errors", {}).items()]
        sections.append(
            f"<div class='activation'>{_svg_plot(curve['label'], series, 'value')}"
            f"{_svg_plot('float32 error vs exact (mpmath)', errors, 'log10(1 + ulp)') if errors else ''}</div>")
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                   for k, v in (environment or {}).items())
    failed = ("<h2>Failures</h2><ul class='failures'>"
              + "".join(f"<li>{html.escape(describe_failure(r))}</li>" for r in failures) + "</ul>") if failures else ""
    document = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>xpnn conformance report</title>"
        f"<style>{STYLE}</style></head><body><h1>xpnn conformance report</h1>"
        f"<p>{html.escape(header)}</p><table class='environment'>{rows}</table>"
        f"<p class='summary'>{verdict}</p>{failed}{summary_svg(results, backend_names)}"
        "<h2>Summary: the worst difference from the reference framework (jax.nn, torch) in ulps over the "
        "dtypes (a cell's title gives the dtypes; failures are listed above)</h2>"
        f"{_matrix(results, labels, backend_names)}"
        "<h2>Activations: the curve on every backend over the reference (dashed), and the float32 error "
        "against the exact value (mpmath) of xpnn on every backend and of the reference framework (black)</h2>"
        f"<div class='plots'>{''.join(sections)}</div></body></html>"
    )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(document)
