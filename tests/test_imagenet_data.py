"""ImageNet: the official archives (generated small, exact format) -> data_scripts/imagenet_prepare.py -> the
ImageFolder loader -> a run; and the layout errors a user can hit."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

import pytest
import scipy.io
import torch

from harness.errors import DataError
from harness.runner import RunConfig, run
from harness.sparsity import SparsityPlan
from harness.tasks import TaskConfig, build_task

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "data_scripts"
ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz")
pytestmark = pytest.mark.usefixtures("one_thread")


def generate(out: Path, seed: int = 4) -> Path:
    subprocess.run([sys.executable, str(SCRIPTS / "make_synthetic_imagenet.py"), "--out", str(out), "--classes", "3",
                    "--train", "3", "--val", "2", "--seed", str(seed)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("ilsvrc"))


def prepare(train: Path, val: Path, devkit: Path, out: Path) -> subprocess.CompletedProcess:
    """Run the prepare script as a user would."""
    return subprocess.run([sys.executable, str(SCRIPTS / "imagenet_prepare.py"), "--train-tar", str(train),
                           "--val-tar", str(val), "--devkit", str(devkit), "--out", str(out)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def tree(archives, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imagenet")
    proc = prepare(*(archives / name for name in ARCHIVES), out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_archives_have_the_official_format(archives, tmp_path):
    with tarfile.open(archives / "ILSVRC2012_img_train.tar") as outer:
        members = outer.getmembers()
        assert all(m.isfile() and "/" not in m.name and m.name.endswith(".tar") for m in members)
        for m in members:
            with tarfile.open(fileobj=outer.extractfile(m)) as inner:
                names = inner.getnames()
            assert len(names) == 3 and all(n.startswith(m.name[:-4] + "_") and n.endswith(".JPEG") for n in names)
    with tarfile.open(archives / "ILSVRC2012_img_val.tar") as tar:
        assert tar.getnames() == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 7)]
    with tarfile.open(archives / "ILSVRC2012_devkit_t12.tar.gz") as tar:
        meta = scipy.io.loadmat(io.BytesIO(tar.extractfile("ILSVRC2012_devkit_t12/data/meta.mat").read()),
                                squeeze_me=True)["synsets"]
        truth_ids = [int(x) for x in tar.extractfile(
            "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt").read().split()]
    # Read meta.mat by field position, as torchvision's parse_devkit_archive does.
    fields = list(zip(*meta))
    assert meta.dtype.names[:5] == ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children")
    leaves = [s for s, n in zip(meta, fields[4]) if n == 0]
    assert [int(s[0]) for s in leaves] == [1, 2, 3] and int(meta[0][0]) == 1  # leaves first, IDs 1..N
    assert any(n > 0 for n in fields[4]) and all(int(s[0]) > 3 for s in meta if s[4] > 0)
    wnids = [str(s[1]) for s in leaves]
    assert wnids != sorted(wnids), "ID order must differ from ImageFolder's sorted order to test the mapping"
    assert [wnids[i - 1] for i in truth_ids] == (archives / "val_wnids.txt").read_text().split()
    again = generate(tmp_path / "again")  # deterministic by seed, byte for byte
    assert all((again / n).read_bytes() == (archives / n).read_bytes() for n in ARCHIVES)


def test_prepare_sorts_validation_by_ground_truth(archives, tree):
    truth = (archives / "val_wnids.txt").read_text().split()
    for index, wnid in enumerate(truth, start=1):
        assert (tree / "val" / wnid / f"ILSVRC2012_val_{index:08d}.JPEG").is_file()
    assert sum(1 for _ in (tree / "val").rglob("*.JPEG")) == len(truth)
    assert sorted(p.name for p in (tree / "train").iterdir()) == sorted(set(truth))
    assert all(len(list(d.iterdir())) == 3 for d in (tree / "train").iterdir())


def test_loader_and_run(archives, tree, tmp_path, monkeypatch):
    task = build_task("imagenet", TaskConfig(model="resnet18", data=tree, batch_size=2, options={"imgsz": 64}))
    assert task.num_classes == 3
    batches = list(task.train_loader(0))  # every image, incl. the grayscale and CMYK JPEGs, decodes to RGB
    assert sum(len(y) for _, y in batches) == 9
    x, y = batches[0]
    assert x.shape == (2, 3, 64, 64) and y.dtype == torch.int64
    val = task.eval_loader()
    assert next(iter(val))[0].shape[1:] == (3, 64, 64)
    truth = (archives / "val_wnids.txt").read_text().split()
    classes = val.dataset.classes
    by_file = sorted(val.dataset.samples, key=lambda s: Path(s[0]).name)  # image-number order
    assert [classes[t] for _, t in by_file] == truth  # labels follow the devkit's ground truth
    monkeypatch.chdir(tmp_path)
    rec = run(RunConfig(task="imagenet", model="resnet18", method="slr", rate=6.5, data=str(tree), epochs=1,
                        retrain_epochs=0, max_steps=1, batch_size=2, options={"imgsz": 64}), log=lambda s: None)
    assert rec["status"] == "completed", rec.get("error")
    # 3 classes instead of 1000 shrink the FC layer, so the paper-rule rate is what SparsityPlan predicts for
    # this model, close to (not exactly) the 1000-class 6.503.
    predicted = SparsityPlan(ratios=rec["compression"]["prune_ratios"]).predicted_compression(task.build_model())
    assert rec["compression"]["achieved"]["paper"] == pytest.approx(predicted["paper"], rel=1e-9)
    assert predicted["paper"] == pytest.approx(6.5, rel=1e-3)


def _swap(paths: dict[str, Path], tmp: Path) -> dict[str, Path]:
    return paths | {"train": paths["val"], "val": paths["train"]}


def _missing_val(paths: dict[str, Path], tmp: Path) -> dict[str, Path]:
    return paths | {"val": tmp / "ILSVRC2012_img_val.tar"}


def _devkit_not_tar(paths: dict[str, Path], tmp: Path) -> dict[str, Path]:
    fake = tmp / "ILSVRC2012_devkit_t12.tar.gz"
    fake.write_text("<html>login required</html>")  # what a failed download leaves behind
    return paths | {"devkit": fake}


@pytest.mark.parametrize("damage,needle", [
    (_missing_val, "ILSVRC2012_img_val.tar does not exist"),
    (_swap, "not per-class <wnid>.tar"),
    (_devkit_not_tar, "not a readable tar archive"),
])
def test_prepare_bad_archive_is_one_line(archives, tmp_path, damage: Callable, needle: str):
    paths = dict(zip(("train", "val", "devkit"), (archives / n for n in ARCHIVES)))
    paths = damage(paths, tmp_path)
    proc = prepare(paths["train"], paths["val"], paths["devkit"], tmp_path / "out")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr


def _flatten_val(tree: Path) -> None:
    """val/ as the val tar unpacks: JPEGs not sorted into <wnid>/ folders."""
    for d in [d for d in (tree / "val").iterdir() if d.is_dir()]:
        for f in d.iterdir():
            f.rename(tree / "val" / f.name)
        d.rmdir()


@pytest.mark.parametrize("damage,needle", [
    (lambda t: shutil.rmtree(t / "val"), "lacks val/"),
    (_flatten_val, "no class folders"),
    (lambda t: shutil.rmtree(next((t / "val").iterdir())), "class folders differ"),
    (lambda t: [f.unlink() for f in sorted((t / "train").iterdir())[1].iterdir()], r"1 class folder\(s\) without images"),
])
def test_layout_errors(tree, tmp_path, damage: Callable, needle: str):
    broken = tmp_path / "broken"
    shutil.copytree(tree, broken)
    damage(broken)
    with pytest.raises(DataError, match=needle) as exc:
        build_task("imagenet", TaskConfig(model="resnet18", data=broken))
    assert "imagenet_prepare.py" in str(exc.value)
