"""ImageNet: the official archives (generated small, exact format) -> data_scripts/imagenet_prepare.py -> the
ImageFolder loader -> a run; and the layout errors a user can hit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.errors import DataError
from harness.runner import RunConfig, run
from harness.sparsity import SparsityPlan
from harness.tasks import TaskConfig, build_task

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "data_scripts"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ilsvrc")
    subprocess.run([sys.executable, str(SCRIPTS / "make_synthetic_imagenet.py"), "--out", str(out), "--classes", "3",
                    "--train", "3", "--val", "2", "--seed", "4"], check=True, capture_output=True)
    return out


def prepare(archives: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "imagenet_prepare.py"),
                           "--train-tar", str(archives / "ILSVRC2012_img_train.tar"),
                           "--val-tar", str(archives / "ILSVRC2012_img_val.tar"),
                           "--devkit", str(archives / "ILSVRC2012_devkit_t12.tar.gz"), "--out", str(out)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def tree(archives, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imagenet")
    proc = prepare(archives, out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_prepare_sorts_validation_by_ground_truth(archives, tree):
    truth = (archives / "val_wnids.txt").read_text().split()
    for index, wnid in enumerate(truth, start=1):
        assert (tree / "val" / wnid / f"ILSVRC2012_val_{index:08d}.JPEG").is_file()
    assert sorted(p.name for p in (tree / "train").iterdir()) == sorted(set(truth))
    assert all(len(list(d.iterdir())) == 3 for d in (tree / "train").iterdir())


def test_loader_and_run(tree, tmp_path, monkeypatch):
    task = build_task("imagenet", TaskConfig(model="resnet18", data=tree, batch_size=2, options={"imgsz": 64}))
    x, y = next(iter(task.train_loader()))
    assert x.shape == (2, 3, 64, 64) and y.dtype == torch.int64 and task.num_classes == 3
    xv, _ = next(iter(task.eval_loader()))
    assert xv.shape[1:] == (3, 64, 64)
    monkeypatch.chdir(tmp_path)
    rec = run(RunConfig(task="imagenet", model="resnet18", method="slr", rate=6.5, data=str(tree), epochs=1,
                        retrain_epochs=0, max_steps=1, batch_size=2, options={"imgsz": 64}), log=lambda s: None)
    assert rec["status"] == "completed"
    model = task.build_model()
    predicted = SparsityPlan(ratios=rec["compression"]["prune_ratios"]).predicted_compression(model)["paper"]
    assert rec["compression"]["achieved"]["paper"] == pytest.approx(predicted, rel=1e-9)
    assert predicted == pytest.approx(6.5, rel=1e-3)


def test_missing_archive_is_one_line(archives, tmp_path):
    bad = tmp_path / "copy"
    shutil.copytree(archives, bad)
    (bad / "ILSVRC2012_img_val.tar").unlink()
    proc = prepare(bad, tmp_path / "out")
    assert proc.returncode != 0 and "ILSVRC2012_img_val.tar" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("damage,needle", [
    (lambda t: shutil.rmtree(t / "val"), "lacks val/"),
    (lambda t: [shutil.move(str(f), str(t / "val")) for d in list((t / "val").iterdir()) for f in list(d.iterdir())]
     and [d.rmdir() for d in (t / "val").iterdir() if d.is_dir()], "no class folders"),
    (lambda t: shutil.rmtree(next((t / "val").iterdir())), "class folders differ"),
])
def test_layout_errors(tree, tmp_path, damage, needle):
    broken = tmp_path / "broken"
    shutil.copytree(tree, broken)
    damage(broken)
    with pytest.raises(DataError, match=needle) as exc:
        build_task("imagenet", TaskConfig(model="resnet18", data=broken))
    assert "imagenet_prepare.py" in str(exc.value)
