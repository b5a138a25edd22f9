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
    best = rows[0]["best"]["hardpruned"]
    vals = {m: d["hardpruned"]["mean"] for m, d in rows[0]["methods"].items()}
    assert vals[best] == max(vals.values())
    for fmt in ("md", "csv", "json", "records"):
        ex.export(store, fmt, tmp_path / f"lb.{fmt}")
    md = (tmp_path / "lb.md").read_text()
    assert "| 4x |" in md and "**" in md
    flat = json.loads((tmp_path / "lb.json").read_text())["rows"]
    assert {r["method"] for r in flat} == {"slr", "admm", "magnitude"} and sum(r["best_hardpruned"] for r in flat) == 1
    assert len(json.loads((tmp_path / "lb.records").read_text())) == 3
    assert (tmp_path / "lb.csv").read_text().startswith("task,model,rate,method")


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
    imgs = html.count("<img ")
    assert imgs >= 5 and html.count('src="data:image/png;base64,') == imgs  # self-contained: every image inline
    assert "http://" not in html.split("<body>", 1)[1] and "https://" not in html.split("<body>", 1)[1]
    shot = tmp_path / "board.png"
    res = subprocess.run(flags + ["--window-size=1280,2400", f"--screenshot={shot}", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and shot.stat().st_size > 20_000
