"""Export: leaderboard formats, figures, the HTML page in a real headless Chromium, and the record JSON schema."""

from __future__ import annotations

import json
import shutil
import os
import subprocess
from pathlib import Path

import pytest

from harness import export as ex
from harness import sweep as sw

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("export")
    spec = sw.SweepSpec(methods=["slr", "admm", "magnitude"], rates=[4.0],
                        run=dict(epochs=3, retrain_epochs=1, pretrain_epochs=2, max_steps=3, check_every=1, device="cpu"))
    outcomes = sw.run_sweep(spec, store=d / "s.sqlite", out=d / "runs")
    assert all(o.status == "completed" for o in outcomes)
    return d / "s.sqlite"


def test_record_matches_json_schema(store):
    import jsonschema

    schema = json.loads((ROOT / "harness/schema/run_record.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    records = ex.load_checked(store)
    for rec in records:
        jsonschema.Draft202012Validator(schema).validate(rec)
    broken = dict(records[0], status="finished-ish")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_leaderboard_formats_and_best_marking(store, tmp_path):
    rows = ex.leaderboard(ex.load_checked(store))
    assert len(rows) == 1 and set(rows[0]["methods"]) == {"slr", "admm", "magnitude"}
    # one seed per method: no difference can be significant, so no method is marked best
    assert rows[0]["best"] == {} and all(d["hardpruned"]["n"] == 1 for d in rows[0]["methods"].values())
    for fmt in ("md", "csv", "json", "records"):
        ex.export(store, fmt, tmp_path / f"lb.{fmt}")
    md = (tmp_path / "lb.md").read_text()
    assert "| 4x |" in md and "| rate | config | dense |" in md and "(n=1)" in md
    flat = json.loads((tmp_path / "lb.json").read_text())["rows"]
    assert {r["method"] for r in flat} == {"slr", "admm", "magnitude"} and sum(r["best_hardpruned"] for r in flat) == 0
    assert all(r["dense"] is not None and r["unit"] == "%" for r in flat)
    assert len(json.loads((tmp_path / "lb.records").read_text())) == 3
    assert (tmp_path / "lb.csv").read_text().startswith("task,model,rate,method,config,metric,unit,dense")


def _synthetic(seeds=(0, 1, 2), gap: float = 5.0) -> list[dict]:
    from tests.records_factory import make_record

    recs = []
    for s in seeds:
        recs.append(make_record("slr", seed=s, dense=97.0 + s, hardpruned=90.0 + s + gap, retrained=95.0 + s))
        recs.append(make_record("admm", seed=s, dense=97.0 + s, hardpruned=90.0 + s + 0.3 * (s % 2), retrained=95.0 + s))
    return recs


def test_best_is_marked_only_when_significant():
    (row,) = ex.leaderboard(_synthetic())
    assert row["best"] == {"hardpruned": "slr"} and row["best_p"]["hardpruned"] < 0.05  # paired on seeds 0-2
    assert row["best_p"]["retrained"] == 1.0  # a tie is no winner
    (close,) = ex.leaderboard(_synthetic(gap=0.1))
    assert "hardpruned" not in close["best"] and close["best_p"]["hardpruned"] > 0.05
    assert ex.fmt_stat(row["methods"]["slr"]["hardpruned"]) == "96.00 ± 2.48 (n=3)"  # 95 % t-interval: 4.303 / sqrt 3


def test_configs_are_separate_rows_with_a_label_and_a_dense_column(tmp_path):
    from tests.records_factory import make_record

    recs = [make_record(m, seed=s, epochs=e, hardpruned=40.0 + 10 * e + s) for m in ("slr", "admm")
            for e in (1, 4) for s in (0, 1)]
    recs.append(make_record("slr", seed=1, epochs=1, hardpruned=51.0))  # seed 1 again: n stays 2
    rows = ex.leaderboard(recs)
    assert [(r["rate"], r["label"]) for r in rows] == [(4.0, "epochs=1"), (4.0, "epochs=4")]
    assert all(d["hardpruned"]["n"] == 2 for r in rows for d in r["methods"].values())
    assert rows[0]["methods"]["slr"]["hardpruned"]["mean"] == 50.5 and rows[1]["methods"]["slr"]["hardpruned"]["mean"] == 80.5
    src = tmp_path / "recs.json"
    src.write_text(json.dumps(recs))
    md = ex.export(src, "md", tmp_path / "b.md").read_text()
    assert "| 4x | epochs=1 | 98.00 ± 0.00 (n=2) |" in md and "| 4x | epochs=4 |" in md
    page = ex.export(src, "html", tmp_path / "b.html").read_text()
    assert "<th rowspan='2'>dense</th>" in page and "epochs=4" in page
    csv_text = ex.export(src, "csv", tmp_path / "b.csv").read_text()
    assert ",epochs=1,top1,%,98.0," in csv_text


def test_markdown_escapes_user_text(tmp_path):
    from tests.records_factory import make_record

    recs = [make_record("slr", seed=s) for s in (0, 1)]
    for r in recs:
        r["model"] = r["config"]["model"] = "cnn|<img src=x onerror=alert(1)>"
    md = ex.to_markdown(ex.leaderboard(recs))
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md and "cnn\\|&lt;" in md
    header = next(line for line in md.splitlines() if line.startswith("| rate"))
    first = next(line for line in md.splitlines() if line.startswith("| 4x"))
    assert header.count(" | ") == first.count(" | ")  # no extra column from a pipe in user text


def test_export_refuses_to_overwrite_results(store, tmp_path, capsys):
    from harness import cli
    from tests.records_factory import make_record

    run_record = tmp_path / "record.json"
    run_record.write_text(json.dumps(make_record()))
    records_list = ex.export(store, "records", tmp_path / "baseline.json")
    for out, fmt in ((store, "md"), (run_record, "html"), (records_list, "md")):
        before = out.read_bytes()
        with pytest.raises(SystemExit) as exc:
            cli.main(["export", "--results", str(store), "--format", fmt, "--out", str(out)])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "refusing to overwrite" in err, err
        assert out.read_bytes() == before or out == store
    assert len(ex.load_checked(store)) == 3  # the store is intact
    ex.export(store, "records", records_list)  # refreshing a records export (a baseline) is allowed


def test_figures_are_files_with_units_dense_line_and_error_bars(store, tmp_path, monkeypatch):
    from PIL import Image

    from harness import plots

    monkeypatch.chdir(store.parent)
    page = ex.export(store, "md", tmp_path / "board.md")
    folder = tmp_path / "board_figures"
    pngs, svgs = sorted(folder.glob("*.png")), sorted(folder.glob("*.svg"))
    assert len(pngs) >= 5 and [p.stem for p in pngs] == [p.stem for p in svgs]
    for p in pngs:
        assert Image.open(p).info["dpi"][0] >= 199.5
        assert f"(board_figures/{p.name})" in page.read_text()
    svg = {p.stem: p.read_text() for p in svgs}
    assert "top1 (%)" in svg["rate_digits_cnn"] and "dense" in svg["rate_digits_cnn"]
    assert "method epoch" in svg["curve_digits_cnn_4x"] and "hard-pruned top1 (%)" in svg["curve_digits_cnn_4x"]
    assert "stage 1" in svg["conditions"] and "stage 2" in svg["conditions"]
    assert "weight value" in svg["histograms"] and "count (log scale)" in svg["histograms"]
    assert "|w| (0 = pruned)" in svg["heatmaps"]

    # error bars with n > 1, dense line, numeric rate order: inspect the matplotlib figures themselves
    drawn = []
    monkeypatch.setattr(plots, "_render", lambda fig: (drawn.append(fig), (b"", b""))[1])
    from tests.records_factory import make_record

    recs = [make_record(m, rate=r, seed=s, hardpruned=80.0 - r + s) for m in ("slr", "admm") for r in (20.0, 4.0, 10.0)
            for s in (0, 1)]
    for r in recs:
        r["curves"]["hardprune_checks"] = [{"epoch": e, "metric": 70.0 + e} for e in (1, 2)]
    (fig,) = [f for f in plots.metric_vs_rate(recs)]
    ax = drawn[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4x", "10x", "20x"]
    bars = [c for c in ax.containers if c.has_yerr]
    assert len(bars) == 4 and all(len(c.lines[2][0].get_segments()) == 3 for c in bars)
    assert any(line.get_label().startswith("dense") for line in ax.get_lines())
    assert [f.name for f in plots.hardprune_curves(recs)] == ["curve_digits_cnn_4x", "curve_digits_cnn_10x",
                                                              "curve_digits_cnn_20x"]


def test_figures_are_drawn_or_skipped_with_a_note(store, monkeypatch):
    from harness import plots

    monkeypatch.chdir(store.parent)  # artefact paths in the records are relative to the sweep's folder
    figs = {f.name: f for f in plots.all_figures(ex.load_checked(store))}
    for name in ("conditions", "histograms", "heatmaps"):
        assert figs[name].png and figs[name].png.startswith(b"\x89PNG"), figs[name].note
    assert any(n.startswith("curve_") for n in figs) and any(n.startswith("rate_") for n in figs)
    records = ex.load_checked(store)
    for r in records:
        r["artifacts"]["dense_weights"] = "/nonexistent.pt"
    assert "skipped" in plots.weight_histograms(records).note


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_page_renders_in_headless_chromium(store, tmp_path, monkeypatch):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install -y chromium): the HTML page cannot be rendered")
    monkeypatch.chdir(store.parent)
    page = ex.export(store, "html", tmp_path / "board.html")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    # Chromium writes crash-report settings under $HOME/.config even with --user-data-dir: give it a scratch HOME.
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
           "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache")}
    dom = subprocess.run(flags + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120,
                         env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<table class=\"leaderboard\">" in html and html.count("<tr>") >= 3
    assert "<th rowspan=\"2\">dense</th>" in html and "(n=1)" in html
    imgs = html.count("<img ")
    assert imgs >= 5 and html.count('src="data:image/png;base64,') == imgs  # self-contained: every image inline
    assert "http://" not in html.split("<body>", 1)[1] and "https://" not in html.split("<body>", 1)[1]
    shot = tmp_path / "board.png"
    res = subprocess.run(flags + ["--window-size=1280,2400", f"--screenshot={shot}", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and shot.stat().st_size > 20_000


def test_rate_plot_draws_one_line_per_method_and_config_across_rates(monkeypatch):
    from harness import plots
    from tests.records_factory import make_record

    drawn = []
    monkeypatch.setattr(plots, "_render", lambda fig: (drawn.append(fig), (b"", b""))[1])
    recs = [make_record(m, rate=r, seed=s, epochs=e) for m, e in (("slr", 1), ("slr", 4), ("admm", 4))
            for r in (4.0, 10.0) for s in (0, 1)]
    recs = [r for r in recs if not (r["method"] == "slr" and r["config"]["epochs"] == 1 and r["rate_requested"] == 10.0)]
    plots.metric_vs_rate(recs)
    ax = drawn[0].axes[0]
    points = {c.get_label(): len(c.lines[0].get_xdata()) for c in ax.containers}
    assert points == {"admm [epochs=4] hard-pruned": 2, "admm [epochs=4] retrained": 2,
                      "slr [epochs=1] hard-pruned": 1, "slr [epochs=1] retrained": 1,
                      "slr [epochs=4] hard-pruned": 2, "slr [epochs=4] retrained": 2}
