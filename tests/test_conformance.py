"""The conformance suite itself: it can fail, it fails on uncovered names, its JSON keeps its shape."""
from __future__ import annotations

import json

import numpy as np
import pytest

import xpnn
from xpnn.conformance import __main__ as suite

RECORD_KEYS = {"case", "function", "family", "backend", "device", "dtype", "reference", "max_abs", "max_rel", "max_ulp",
               "special_mismatch", "within_tolerance", "passed", "output_problem", "output"}


def _run(tmp_path, *argv):
    path = tmp_path / "report.json"
    devices = () if "--devices" in argv else ("--devices", "cpu")  # the same columns with or without a GPU
    report = () if "--report" in argv else ("--no-report",)  # tests write no report into the working directory
    status = suite.main([*argv, *devices, *report, "--json", str(path)])
    return status, json.loads(path.read_text())


def test_every_public_name_has_a_check():
    assert suite.uncovered(suite.checks()) == []
    names = suite.public_names()
    assert {"gelu", "Dense", "Dropout", "BatchApply", "random.normal", "initializers.orthogonal"} <= names


def test_clean_run_passes_with_a_stable_json_schema(tmp_path):
    status, report = _run(tmp_path, "--only", "gelu", "--backends", "numpy,torch")
    assert status == 0 and report["uncovered"] == []
    assert {r["backend"] for r in report["results"]} == {"numpy", "torch"}
    for record in report["results"]:
        assert set(record) == RECORD_KEYS | {"fast_path_agrees", "grad_agrees"} and record["passed"]
        assert record["fast_path_agrees"] is True
        expected_grad = True if (record["backend"], record["dtype"]) == ("torch", "float64") else None
        assert record["grad_agrees"] is expected_grad
        assert record["output"] == {"library": record["backend"], "device": "cpu", "dtype": record["output"]["dtype"],
                                    "shape": [4, 16]}
        assert record["output"]["dtype"].endswith(record["dtype"])
    status, report = _run(tmp_path, "--only", "Dense(3) apply", "--backends", "numpy")
    assert status == 0 and all(set(r) == RECORD_KEYS for r in report["results"])


@pytest.mark.slow  # the main job runs these rows on every backend
def test_the_samplers_and_layers_pass_on_jax_and_numpy(tmp_path):
    """The main job's random and layer rows on the libraries whose defaults differ (jax's follow
    its x64 mode, which the suite turns on): a bernoulli reference once disagreed there."""
    for pattern in ("random.*", "*Dropout*"):
        status, report = _run(tmp_path, "--only", pattern, "--backends", "numpy,jax", "--no-grad")
        failures = [(r["case"], r["backend"], r["dtype"]) for r in report["results"] if not r["passed"]]
        assert status == 0 and not failures, failures


def test_jax_default_mode_is_a_column_of_the_main_job(tmp_path):
    status, report = _run(tmp_path, "--only", "random.key", "--backends", "jax,jax_x64_off")
    assert status == 0
    assert {r["backend"] for r in report["results"]} == {"jax", "jax (x64 off)"}


def test_no_grad_skips_gradients(tmp_path):
    status, report = _run(tmp_path, "--only", "gelu", "--backends", "torch", "--no-grad")
    assert status == 0 and all(r["grad_agrees"] is None for r in report["results"])


def test_a_wrong_gradient_is_reported(tmp_path, monkeypatch):
    import torch

    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return torch.nn.functional.silu(x)

        @staticmethod
        def backward(ctx, grad):
            return grad * 1.01

    original = xpnn.silu
    monkeypatch.setattr(xpnn, "silu", lambda x: WrongBackward.apply(x) if isinstance(x, torch.Tensor) else original(x))
    status, report = _run(tmp_path, "--only", "silu", "--backends", "torch", "--dtypes", "float64")
    assert status == 1
    assert [r["grad_agrees"] for r in report["results"]] == [False]


@pytest.mark.parametrize("name, wrong, only", [
    ("gelu", lambda x, approximate=True: xpnn.functions.activations.gelu(x * (1 + 1e-5), approximate), "gelu"),
    ("Dense", None, "Dense(3) apply"),
])
def test_a_wrong_implementation_is_reported(tmp_path, monkeypatch, name, wrong, only):
    if name == "Dense":
        original = xpnn.Dense.__call__.__wrapped__

        def off_by_a_little(self, inputs):
            return original(self, inputs) * 1.0001

        monkeypatch.setattr(xpnn.Dense, "__call__", xpnn.module._wrap_method(off_by_a_little))
    else:
        monkeypatch.setattr(xpnn, name, wrong)
    status, report = _run(tmp_path, "--only", only, "--backends", "numpy")
    assert status == 1
    assert report["results"] and not any(r["passed"] for r in report["results"])


def test_a_wrong_sampler_is_reported(tmp_path, monkeypatch):
    normal = xpnn.random.normal
    monkeypatch.setattr(xpnn.random, "normal", lambda key, shape=(), dtype=None: normal(key, shape, dtype) * 1.001)
    status, report = _run(tmp_path, "--only", "random.normal", "--backends", "numpy")
    assert status == 1 and not any(r["passed"] for r in report["results"])


def test_an_uncovered_public_name_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(xpnn, "FUNCTIONS", (*xpnn.FUNCTIONS, "not_yet_checked"))
    status, report = _run(tmp_path, "--only", "relu", "--backends", "numpy")
    assert status == 1 and report["uncovered"] == ["not_yet_checked"]
    assert all(r["passed"] for r in report["results"])


def test_errors_are_recorded_not_raised(tmp_path, monkeypatch, capsys):
    def broken(x):
        raise RuntimeError("boom")

    monkeypatch.setattr(xpnn, "relu", broken)
    status, report = _run(tmp_path, "--only", "relu", "--backends", "numpy")
    assert status == 1
    assert all(r["error"] == "RuntimeError: boom" for r in report["results"])
    np.testing.assert_equal(len(report["results"]), 2)  # float32 and float64
    # each failure is also printed as it happens, before the matrix, for a run stopped early
    early = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAIL ")]
    assert early == [f"FAIL relu [numpy, {dtype}]: raised RuntimeError: boom" for dtype in ("float32", "float64")]


def test_namespace_option_certifies_a_library(tmp_path):
    status, report = _run(tmp_path, "--namespace", "array_api_strict", "--only", "softplus")
    assert status == 0 and report["results"]
    assert {r["backend"] for r in report["results"]} == {"array_api_strict"}
    assert {r["dtype"] for r in report["results"]} == {"float32", "float64"}


def test_namespace_option_rejects_a_non_namespace():
    with pytest.raises(ValueError, match="not an Array API namespace"):
        suite.main(["--namespace", "json", "--only", "relu"])


def test_part_option_splits_the_checks_between_runs(tmp_path):
    parts = [_run(tmp_path, "--only", "*elu*", "--backends", "numpy", "--no-grad", "--part", f"{k}/3")[1]
             for k in (1, 2, 3)]
    cases = [[r["case"] for r in report["results"]] for report in parts]
    every = [c.label for c in suite.checks() if "elu" in c.label]
    assert all(cases) and sorted(set().union(*cases)) == sorted(every)
    assert sum(len(set(c)) for c in cases) == len(every)  # each check in one part only
    for wrong in ("0/3", "4/3", "3", "a/b"):
        with pytest.raises(SystemExit):
            suite.main(["--part", wrong, "--only", "relu"])


def test_merge_reports_the_parts_as_one_run(tmp_path, monkeypatch):
    paths = []
    for k in (1, 2):
        path = tmp_path / f"part{k}.json"
        suite.main(["--only", "*elu*", "--backends", "numpy", "--devices", "cpu", "--no-grad", "--part", f"{k}/2",
                    "--no-report", "--json", str(path)])
        paths.append(path)
    whole = tmp_path / "whole.json"
    status = suite.main(["--merge", str(paths[0]), "--merge", str(paths[1]), "--backends", "numpy", "--devices",
                         "cpu", "--report", str(tmp_path / "whole.html"), "--json", str(whole)])
    merged = json.loads(whole.read_text())
    parts = [json.loads(p.read_text())["results"] for p in paths]
    assert status == 0 and merged["results"] == parts[0] + parts[1]
    assert merged["environment"]["command"].endswith("(merged from 2 runs)")
    assert (tmp_path / "whole.html").read_text().count("<td class='pass'") == len(
        [c for c in suite.checks() if "elu" in c.label])
    # a failure in a part fails the merged run
    parts[1][0]["passed"] = False
    paths[1].write_text(json.dumps({"environment": {"command": "x"}, "results": parts[1], "uncovered": []}))
    assert suite.main(["--merge", str(paths[0]), "--merge", str(paths[1]), "--no-report", "--json", str(whole)]) == 1


def test_devices_option(tmp_path):
    status, report = _run(tmp_path, "--devices", "cpu", "--only", "relu", "--backends", "numpy,torch")
    assert status == 0 and {r["device"] for r in report["results"]} == {"cpu"}
    with pytest.raises(SystemExit, match="unknown device"):
        suite.main(["--devices", "tpu7", "--only", "relu"])


def test_html_report_has_the_matrix_and_the_plots(tmp_path):
    import xml.dom.minidom

    path = tmp_path / "report.html"
    assert suite.main(["--only", "*elu*", "--backends", "numpy,torch", "--devices", "cpu", "--report", str(path),
                       "--json", str(tmp_path / "report.json")]) == 0
    text = path.read_text()
    assert "xpnn conformance report" in text and "all " in text and "checks passed" in text
    assert text.count("<td class='pass'") == len([c for c in suite.checks() if "elu" in c.label]) * 2
    assert {case.function for case in suite.report.plotted_cases()} >= {"gelu", "relu", "hard_shrink", "softplus"}
    plotted = {case.function for case in suite.report.plotted_cases("*elu*")}  # --only filters the plots too
    assert plotted and all("elu" in name for name in plotted)
    assert text.count("<svg") == 1 + 2 * len(plotted)  # the summary, then curve + error per activation
    xml.dom.minidom.parse(str(tmp_path / "report-summary.svg"))
    # the environment that produced it, parsed as a browser would
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.cells, self.plots, self.inside = [], 0, False

        def handle_starttag(self, tag, attrs):
            self.inside = tag == "td"
            self.plots += tag == "svg" and ("class", "plot") in attrs

        def handle_data(self, data):
            if self.inside:
                self.cells.append(data)

    parsed = Cells()
    parsed.feed(text)
    for field in ("date", "command", "python", "cpu", "xpnn", "numpy", "torch", "jax"):
        assert field in parsed.cells, field
    assert parsed.plots == 2 * len(plotted)
    assert "grid-template-columns" in text and 'viewBox="0 0' in text


@pytest.mark.parametrize(("low", "high"), [(-6.0, 6.0), (0.0, 7.21), (-0.998, 6.0), (0.0, 0.263), (-3.02, -0.00248),
                                           (1e-9, 3e-9), (5.0, 5.0001), (-1.0, 1.0), (0.0, 1e-30), (-9.0, 6.0)])
def test_plot_ticks_are_round_and_inside_the_range(low, high):
    """The plots' ticks: at least four, evenly spaced inside the range, at multiples of 1, 2, 2.5
    or 5 times a power of ten, printed short."""
    ticks = suite.report.nice_ticks(low, high)
    steps = np.diff(ticks)
    assert len(ticks) >= 4 and low - 1e-12 * abs(low) <= ticks[0] and ticks[-1] <= high + 1e-12 * abs(high)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)
    mantissa = steps[0] / 10.0 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1.0, 2.0, 2.5, 5.0)), steps[0]
    assert all(np.isclose(t / steps[0], round(t / steps[0])) for t in ticks)
    assert all(len(f"{t:.4g}") <= 8 for t in ticks), ticks


#: Measures the rendered report in the browser and writes what it saw into the page, as JSON:
#: the boxes of the activations' panels, and per plot the overflows of its texts past the plot,
#: the legend entries that run into each other, and those over the data's frame.
_LAYOUT_PROBE = """<script>
addEventListener('load', () => {
  const box = e => e.getBBox();
  const overlap = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  const plots = [...document.querySelectorAll('svg.plot')].map(svg => {
    const [, , width, height] = svg.getAttribute('viewBox').split(' ').map(Number);
    const frame = box(svg.querySelector('rect.frame'));
    const texts = [...svg.querySelectorAll('text')].filter(t => !t.getAttribute('transform'));
    const legends = [...svg.querySelectorAll('text.legend')].map(box);
    const outside = b => b.x < 0 || b.y < 0 || b.x + b.width > width || b.y + b.height > height;
    return {
      outside: texts.map(box).filter(outside).length,
      crossing: legends.filter((a, i) => legends.some((b, j) => j > i && overlap(a, b))).length,
      over_data: legends.filter(b => overlap(b, frame)).length,
      legend_entries: legends.length,
      rendered_width: svg.getBoundingClientRect().width,
    };
  });
  const panels = [...document.querySelectorAll('.activation')].map(e => e.getBoundingClientRect().left);
  const out = document.createElement('pre');
  out.id = 'layout';
  out.textContent = JSON.stringify({plots, panel_columns: new Set(panels.map(Math.round)).size,
                                    title: document.querySelector('h1').textContent,
                                    passed_cells: document.querySelectorAll('td.pass').length});
  document.body.appendChild(out);
});
</script>"""


def test_html_report_renders_in_a_browser(tmp_path):
    """The report as headless Chromium lays it out at 1400 px: the activations' panels side by
    side in a grid, and in every plot each tick label and legend name inside the plot, no legend
    name running into another, none over the data."""
    import html
    import re
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    path = tmp_path / "report.html"
    assert suite.main(["--only", "relu*", "--backends", "numpy,array_api_strict,torch,jax", "--devices", "cpu",
                       "--dtypes", "float32", "--no-grad", "--report", str(path),
                       "--json", str(tmp_path / "report.json")]) == 0
    page = tmp_path / "measured.html"
    page.write_text(path.read_text().replace("</body>", _LAYOUT_PROBE + "</body>"))
    rendered = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1400,1000", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="layout">(.*?)</pre>', rendered, re.S)
    assert found, rendered[-2000:]
    layout = json.loads(html.unescape(found.group(1)))
    plotted = {case.function for case in suite.report.plotted_cases("relu*")}
    assert layout["title"] == "xpnn conformance report"
    assert layout["passed_cells"] == len([c for c in suite.checks() if c.label.startswith("relu")]) * 4
    assert len(layout["plots"]) == 2 * len(plotted) and layout["panel_columns"] >= 2
    for plot in layout["plots"]:
        assert plot["legend_entries"] >= 5 and plot["rendered_width"] > 250, plot
        assert plot["outside"] == plot["crossing"] == plot["over_data"] == 0, plot


def test_failures_are_described_in_words():
    record = {"case": "gelu", "backend": "torch", "dtype": "float32", "reference": "jax.nn.gelu", "max_ulp": 12.0,
              "max_abs": 3e-6, "max_rel": 2e-6, "special_mismatch": 2, "within_tolerance": False,
              "fast_path_agrees": False, "grad_agrees": None, "passed": False}
    assert suite.report.describe_failure(record) == (
        "gelu [torch, float32]: differs from jax.nn.gelu by up to 12 ulp (absolute 3e-06, relative 2e-06), beyond "
        "float32's tolerance; 2 values differ in nan, infinity or the sign of a zero; the native fast path disagrees "
        "with the written-once definition")
    assert suite.report.describe_failure({**record, "error": "ValueError: no"}) == "gelu [torch, float32]: raised ValueError: no"
