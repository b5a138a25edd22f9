"""An outside package adds a task and a method through entry points, without editing prunebench (run from the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.registry import Registry

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = '''
from dataclasses import dataclass

from adapters.classification import DigitsTask
from harness.methods.magnitude import OneShotMagnitude
from harness.options import setting


@dataclass
class TinyOptions:
    shift: int = setting(0, lo=0, help="unused; proves typed plugin options")
    label: str = setting("tiny", help="unused too")


class TinyDigits(DigitsTask):
    Options = TinyOptions  # typed --opt values for this task
    name = "tinydigits"


@dataclass
class HalfOptions:
    note: str = setting("x", help="a plugin method option")


class HalfMagnitude(OneShotMagnitude):
    name = "halfmag"
    Options = HalfOptions

    def __init__(self, projection="topk", options=None):
        super().__init__(projection=projection)
        self.options = options

    def config(self):
        return super().config() | {"note": self.options.note}
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A package plus the dist-info an installer would write: importlib.metadata finds its entry points."""
    (tmp_path / "pb_plugin.py").write_text(PLUGIN)
    info = tmp_path / "pb_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pb-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [prunebench.tasks]
        tinydigits = pb_plugin:TinyDigits

        [prunebench.methods]
        halfmag = pb_plugin:HalfMagnitude
    """))
    return tmp_path


def test_plugin_task_and_method_run_from_the_cli(plugin_path: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": f"{plugin_path}{os.pathsep}{ROOT}", "PRUNEBENCH_PROGRESS": "0"}
    work = tmp_path / "work"
    work.mkdir()
    cmd = [sys.executable, "-m", "harness.cli", "run", "--task", "tinydigits", "--method", "halfmag", "--rate", "2",
           "--epochs", "1", "--retrain-epochs", "0", "--pretrain-epochs", "0", "--max-steps", "2",
           "--opt", "shift=1", "--method-opt", "note=plugged", "--json"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    rec = json.loads(proc.stdout)
    assert rec["task"] == "tinydigits" and rec["method"] == "halfmag" and rec["status"] == "completed"
    assert rec["config"]["method_config"]["note"] == "plugged" and rec["config"]["options"] == {"shift": 1, "label": "tiny"}

    bad = subprocess.run(cmd[:-5] + ["--opt", "shift=-1"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "shift must be >= 0" in bad.stderr

    listing = subprocess.run([sys.executable, "-m", "harness.cli", "tasks"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=300)
    assert "tinydigits" in listing.stdout and "halfmag" in listing.stdout and "--opt shift" in listing.stdout


def test_registry_checks_base_class_and_collisions():
    reg: Registry[type] = Registry("widget", base=int)
    reg.register("a", "builtins:bool")
    assert reg.get("a") is bool
    reg.register("a", "builtins:bool")  # the same target again is fine
    with pytest.raises(UserError, match="registered twice"):
        reg.register("a", "builtins:float")
    reg.register("s", "builtins:str")
    with pytest.raises(UserError, match="not a subclass of int"):
        reg.get("s")
    with pytest.raises(UserError, match="unknown widget 'zz'; choose one of: a, s"):
        reg.get("zz")
    with pytest.raises(UserError, match="letters, digits"):
        reg.register("../evil", "builtins:bool")
    reg.register("gone", "no_such_module_xyz:Thing")
    with pytest.raises(UserError, match="not available"):
        reg.get("gone")
