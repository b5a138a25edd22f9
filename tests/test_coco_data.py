"""Synthetic COCO -> converter -> YOLO labels / lists / YAML, checked numerically against the json; layout errors."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from adapters.detection.coco_data import COCO80_NAMES, check_coco_layout, convert_coco
from harness.errors import DataError
from harness.evaluators.coco import COCO91_TO_COCO80, eval_files

REPO = Path(__file__).resolve().parents[1]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "data_scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


make_synthetic_coco = _load_script("make_synthetic_coco").make_synthetic_coco


@pytest.fixture(scope="module")
def syn2014(tmp_path_factory: pytest.TempPathFactory) -> dict:
    raw = tmp_path_factory.mktemp("raw2014")
    info = make_synthetic_coco(raw, "2014", n_train=10, n_val=8, seed=3, crowd_prob=0.5, n_minival=5)
    out = tmp_path_factory.mktemp("yolo2014")
    info["yaml"] = convert_coco(raw, out, "2014")
    info["out"] = out
    return info


def read_labels(path: Path) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def test_synthetic_json_has_the_real_coco_schema(syn2014: dict) -> None:
    doc = json.loads(Path(syn2014["annotations"]["val2014"]).read_text())
    assert set(doc) == {"info", "licenses", "images", "annotations", "categories"}
    assert {"file_name", "height", "width", "id"} <= set(doc["images"][0])
    assert all(set(a) == {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"}
               for a in doc["annotations"])
    assert all({"supercategory", "id", "name"} == set(c) for c in doc["categories"])
    for c in doc["categories"]:  # real COCO-91 ids with their real names
        assert COCO80_NAMES[COCO91_TO_COCO80[c["id"]]] == c["name"]
    crowd = [a for a in doc["annotations"] if a["iscrowd"]]
    assert crowd and all(isinstance(a["segmentation"], dict) for a in crowd)  # RLE, like COCO's crowd masks
    for a in crowd:  # the RLE really encodes `area` pixels of an h x w mask
        counts, (h, w) = a["segmentation"]["counts"], a["segmentation"]["size"]
        assert sum(counts) == h * w and sum(counts[1::2]) == a["area"]
    plain = [a for a in doc["annotations"] if not a["iscrowd"]]
    assert all(a["area"] <= a["bbox"][2] * a["bbox"][3] + 1 for a in plain)  # polygon area, not box area
    names = [im["file_name"] for im in doc["images"]]
    assert all(n == f"COCO_val2014_{im['id']:012d}.jpg" for n, im in zip(names, doc["images"]))


def test_synthetic_is_deterministic(tmp_path: Path) -> None:
    a = make_synthetic_coco(tmp_path / "a", "2017", n_train=2, n_val=2, seed=7)
    b = make_synthetic_coco(tmp_path / "b", "2017", n_train=2, n_val=2, seed=7)
    for split in ("train2017", "val2017"):
        assert a["annotations"][split].read_bytes() == b["annotations"][split].read_bytes()
        for f in sorted((tmp_path / "a" / split).iterdir()):
            assert f.read_bytes() == (tmp_path / "b" / split / f.name).read_bytes()
    c = make_synthetic_coco(tmp_path / "c", "2017", n_train=2, n_val=2, seed=8)
    assert c["annotations"]["val2017"].read_bytes() != a["annotations"]["val2017"].read_bytes()


def test_yolo_labels_match_json_boxes(syn2014: dict) -> None:
    out: Path = syn2014["out"]
    n_checked = 0
    for split in ("train2014", "val2014"):
        doc = json.loads(Path(syn2014["annotations"][split]).read_text())
        by_img: dict[int, list[dict]] = {}
        for a in doc["annotations"]:
            by_img.setdefault(a["image_id"], []).append(a)
        for im in doc["images"]:
            lab = read_labels(out / "labels" / split / (Path(im["file_name"]).stem + ".txt"))
            W, H = im["width"], im["height"]
            want = []
            for a in by_img.get(im["id"], []):
                if a["iscrowd"]:
                    continue  # crowd boxes are not YOLO targets
                x, y, w, h = a["bbox"]
                x1, y1 = min(x + w, W), min(y + h, H)  # the converter clips to the image
                want.append([COCO91_TO_COCO80[a["category_id"]], (x + x1) / 2 / W, (y + y1) / 2 / H,
                             (x1 - x) / W, (y1 - y) / H])
            want_arr = np.asarray(want, dtype=np.float64).reshape(-1, 5)
            assert lab.shape == want_arr.shape, im["file_name"]
            order = lambda arr: arr[np.lexsort(arr.T[::-1])]  # noqa: E731
            np.testing.assert_allclose(order(lab), order(want_arr), atol=6e-7, rtol=0)
            assert ((lab[:, 1:] >= 0) & (lab[:, 1:] <= 1)).all()
            n_checked += len(want)
    assert n_checked > 20
    # images without objects are kept, with an empty label file
    empties = [p for p in (out / "labels" / "train2014").iterdir() if p.read_text() == ""]
    assert empties or any(p.read_text() == "" for p in (out / "labels" / "val2014").iterdir())


def test_2014_split_lists_and_yaml(syn2014: dict) -> None:
    out: Path = syn2014["out"]
    cfg = yaml.safe_load(syn2014["yaml"].read_text())
    assert cfg["path"] == str(out) and Path(cfg["path"]).is_absolute()
    assert (cfg["train"], cfg["val"]) == ("trainvalno5k.txt", "5k.txt") and "download" not in cfg
    assert cfg["names"] == dict(enumerate(COCO80_NAMES)) and len(cfg["names"]) == 80
    val_doc = json.loads(Path(syn2014["annotations"]["val2014"]).read_text())
    train_doc = json.loads(Path(syn2014["annotations"]["train2014"]).read_text())
    mini = [line.rsplit("/", 1)[-1] for line in syn2014["minival"].read_text().split()]
    val_lines = (out / "5k.txt").read_text().split()
    assert val_lines == [f"./images/val2014/{n}" for n in mini]
    train_lines = (out / "trainvalno5k.txt").read_text().split()
    assert len(train_lines) == len(train_doc["images"]) + len(val_doc["images"]) - len(mini)
    assert not set(val_lines) & set(train_lines)
    assert sum(line.startswith("./images/val2014/") for line in train_lines) == len(val_doc["images"]) - len(mini)
    for line in val_lines + train_lines:
        assert (out / line).is_file()
    ids = {im["file_name"]: im["id"] for im in val_doc["images"]}
    assert cfg["coco_val_image_ids"] == sorted(ids[n] for n in mini)
    assert Path(cfg["coco_gt_json"]) == out / "annotations" / "instances_val2014.json"
    assert Path(cfg["coco_gt_json"]).is_file() and cfg["coco_pred_category_ids"] == "class+1"
    check_coco_layout(out)


def test_yaml_ids_give_the_official_5k_evaluation(syn2014: dict, tmp_path: Path) -> None:
    """GT boxes of exactly the 5k images as detections: AP 1 with the YAML's image ids; with the default (all of
    val2014) the other val images' objects count as misses (the trap the `imgIds` recipe avoids)."""
    cfg = yaml.safe_load(syn2014["yaml"].read_text())
    gt = json.loads(Path(cfg["coco_gt_json"]).read_text())
    keep = set(cfg["coco_val_image_ids"])
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt["annotations"] if a["image_id"] in keep and not a["iscrowd"]]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(dets))
    res = eval_files(pred, cfg["coco_gt_json"], img_ids=cfg["coco_val_image_ids"])
    assert res["AP50"] == pytest.approx(1.0) and res["n_images"] == len(keep)
    others = {a["image_id"] for a in gt["annotations"] if not a["iscrowd"]} - keep
    if others:
        assert eval_files(pred, cfg["coco_gt_json"])["AP50"] < 1.0


def test_2017_conversion_and_cli(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_synthetic_coco(raw, "2017", n_train=3, n_val=4, seed=1)
    cmd = [sys.executable, str(REPO / "data_scripts" / "coco_convert.py"), "--src", str(raw), "--out",
           str(tmp_path / "out"), "--year", "2017", "--images", "copy"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load((tmp_path / "out" / "coco2017.yaml").read_text())
    # Not named val2017.txt on purpose (Ultralytics' COCO mode would change the prediction ids; see coco_data).
    assert cfg["val"] == "val2017_images.txt"
    val_doc = json.loads((raw / "annotations" / "instances_val2017.json").read_text())
    assert cfg["coco_val_image_ids"] == sorted(im["id"] for im in val_doc["images"])
    assert not (tmp_path / "out" / "images" / "val2017").is_symlink()  # --images copy
    assert len((tmp_path / "out" / "train2017_images.txt").read_text().split()) == 3
    check_coco_layout(tmp_path / "out", "2017")


def test_converted_data_loads_in_ultralytics(syn2014: dict, tmp_path: Path) -> None:
    """Ultralytics itself must read our YAML, lists and labels (all images valid, same box count as the json).

    Runs in a subprocess with the offline settings of `harness.offline`, so its import side effects stay out of here."""
    cfg_dir = tmp_path / "yolo_cfg"
    (cfg_dir / "Ultralytics").mkdir(parents=True)
    font = Path(importlib.util.find_spec("matplotlib").origin).parent / "mpl-data/fonts/ttf/DejaVuSans.ttf"
    shutil.copy(font, cfg_dir / "Ultralytics" / "Arial.ttf")  # otherwise check_font tries GitHub
    env = dict(os.environ, YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_CONFIG_DIR=str(cfg_dir),
               MPLCONFIGDIR=str(tmp_path / "mpl"), OMP_NUM_THREADS="1")
    code = f"""
import json
from ultralytics.data.utils import check_det_dataset
from ultralytics.data.dataset import YOLODataset
data = check_det_dataset({str(syn2014['yaml'])!r})
res = {{}}
for split in ("train", "val"):
    ds = YOLODataset(img_path=data[split], data=data, augment=False, imgsz=160, task="detect")
    res[split] = [len(ds.im_files), sum(len(lb["cls"]) for lb in ds.labels)]
print(json.dumps(res))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    out: Path = syn2014["out"]
    for split, list_name in (("train", "trainvalno5k.txt"), ("val", "5k.txt")):
        lines = (out / list_name).read_text().split()
        n_boxes = sum(len(read_labels(out / "labels" / ln.split("/")[2] / (Path(ln).stem + ".txt"))) for ln in lines)
        assert got[split] == [len(lines), n_boxes]


# ----------------------------------------------------------------------------------------------------------------------
# errors


def _msg(fn, *a, **k) -> str:
    with pytest.raises(DataError) as ei:
        fn(*a, **k)
    assert "\n" not in str(ei.value)
    return str(ei.value)


def test_layout_errors_name_file_and_script(syn2014: dict, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(syn2014["out"], out, symlinks=True)
    # the copied YAML still points at the original folder: rewrite `path` and the gt json
    yml = out / "coco2014.yaml"
    yml.write_text(yml.read_text().replace(str(syn2014["out"]), str(out)))
    check_coco_layout(out)

    label = next((out / "labels" / "val2014").iterdir())
    label.unlink()
    msg = _msg(check_coco_layout, out)
    assert label.name in msg and "coco_convert.py" in msg
    label.write_text("")

    (out / "5k.txt").unlink()
    msg = _msg(check_coco_layout, out)
    assert "5k.txt" in msg and "coco_convert.py" in msg
    shutil.copy(syn2014["out"] / "5k.txt", out / "5k.txt")

    (out / "annotations" / "instances_val2014.json").unlink()
    msg = _msg(check_coco_layout, out)
    assert "instances_val2014.json" in msg and "coco_download.py" in msg

    yml.unlink()
    msg = _msg(check_coco_layout, out)
    assert "coco2014.yaml" in msg and "coco_convert.py" in msg
    assert "does not exist" in _msg(check_coco_layout, tmp_path / "nothing")


def test_converter_errors(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_synthetic_coco(raw, "2014", n_train=2, n_val=4, seed=2, n_minival=2)
    msg = _msg(convert_coco, tmp_path / "none", tmp_path / "o")
    assert "coco_download.py" in msg
    # lists missing
    (raw / "5k.part").rename(raw / "5k.bak")
    msg = _msg(convert_coco, raw, tmp_path / "o1")
    assert "5k.part" in msg and "coco_download.py" in msg
    # a list naming an image that is not in val2014
    (raw / "5k.bak").write_text("/images/val2014/COCO_val2014_000000999999.jpg\n")
    msg = _msg(convert_coco, raw, tmp_path / "o2", minival_list=raw / "5k.bak")
    assert "COCO_val2014_000000999999.jpg" in msg and "missing" in msg
    # the two lists overlapping
    msg = _msg(convert_coco, raw, tmp_path / "o3", minival_list=raw / "trainvalno5k.part",
               trainval_list=raw / "trainvalno5k.part")
    assert "may only hold val2014" in msg or "share" in msg
    # a garbage line
    (raw / "bad.txt").write_text("hello.jpg\n")
    assert "not a COCO-2014 image path" in _msg(convert_coco, raw, tmp_path / "o4", minival_list=raw / "bad.txt")
    # missing images folder / annotations
    shutil.rmtree(raw / "val2014")
    assert "val2014.zip" in _msg(convert_coco, raw, tmp_path / "o5", minival_list=raw / "5k.bak")
    (raw / "annotations" / "instances_train2014.json").unlink()
    msg = _msg(convert_coco, raw, tmp_path / "o6")
    assert "instances_train2014.json" in msg and "coco_download.py" in msg


def test_names_match_the_package_coco_yaml() -> None:
    spec = importlib.util.find_spec("ultralytics")  # locates the package without importing it
    assert spec is not None and spec.origin is not None
    cfg = yaml.safe_load((Path(spec.origin).parent / "cfg" / "datasets" / "coco.yaml").read_text())
    assert [cfg["names"][i] for i in range(80)] == list(COCO80_NAMES)


def test_counts_by_class_survive_conversion(syn2014: dict) -> None:
    doc = json.loads(Path(syn2014["annotations"]["train2014"]).read_text())
    want = Counter(COCO91_TO_COCO80[a["category_id"]] for a in doc["annotations"] if not a["iscrowd"])
    got: Counter = Counter()
    for p in (syn2014["out"] / "labels" / "train2014").iterdir():
        got.update(int(r[0]) for r in read_labels(p))
    assert got == want and len(want) >= 3
