"""Official COCO (`instances_*.json` + JPEGs) -> the layout Ultralytics 8.x reads, plus a layout check.

Input ("raw root", what the official zips unpack to; `data_scripts/coco_download.py` makes it):

    <src>/train2014/COCO_train2014_*.jpg   <src>/val2014/COCO_val2014_*.jpg     (or <src>/images/<split>/...)
    <src>/annotations/instances_train2014.json, instances_val2014.json
    <src>/5k.part, <src>/trainvalno5k.part  (Darknet's lists; .txt variants of the old yolov3 repo work too)
    2017: train2017/, val2017/, annotations/instances_{train,val}2017.json

Output (the Ultralytics dataset layout; `data_scripts/coco_convert.py` makes it):

    <out>/images/<split>       directory symlink to the raw images (or a copy with images="copy")
    <out>/labels/<split>/<stem>.txt   one per image, `class cx cy w h` normalised, class in coco80 order;
                                      crowd boxes skipped, images without boxes get an empty file
    <out>/annotations/instances_<split>.json   (symlink or copy; the val one is the evaluator's GT)
    <out>/trainvalno5k.txt, <out>/5k.txt        (2014)   lines `./images/<split>/<file>`
    <out>/train2017_images.txt, <out>/val2017_images.txt (2017)
    <out>/coco2014.yaml | coco2017.yaml        absolute `path`, `train`, `val`, 80 `names`, and for our evaluator:
        coco_gt_json (absolute path of instances_val*.json), coco_val_image_ids (ids of the val list, which
        become COCOeval.params.imgIds), coco_year, coco_pred_category_ids.

The 2017 list files are deliberately *not* named `val2017.txt`: Ultralytics switches to its COCO mode (coco91 ids, its
own json lookup) only when the val entry ends in `/val2017.txt` and the path contains "coco" (ultralytics 8.4
`models/yolo/detect/val.py`), so with that name the id convention of `predictions.json` would depend on where the user
put the data. With our names it is always class+1 (recorded as `coco_pred_category_ids`), exactly as for 2014, and
`normalize_ultralytics_predictions` maps it the same way for both years.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml

from harness.errors import DataError
from harness.userfiles import read_text, require_dir
from harness.yamlio import load_yaml
from harness.evaluators.coco import COCO91_TO_COCO80

# coco80 class names in class-index order (= COCO category ids in increasing order, see COCO80_TO_COCO91).
COCO80_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip

Year = Literal["2014", "2017"]
SPLITS: dict[str, tuple[str, str]] = {"2014": ("train2014", "val2014"), "2017": ("train2017", "val2017")}
# train/val list-file names written into <out> for each year.
LIST_FILES: dict[str, tuple[str, str]] = {
    "2014": ("trainvalno5k.txt", "5k.txt"),
    "2017": ("train2017_images.txt", "val2017_images.txt"),
}
DOWNLOAD = "data_scripts/coco_download.py"
CONVERT = "data_scripts/coco_convert.py"
_NAME_2014 = re.compile(r"^COCO_(train2014|val2014)_(\d+)\.jpg$")


def yaml_name(year: str) -> str:
    return f"coco{year}.yaml"


def _load_instances(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"missing {path}; download and unzip the COCO annotations with {DOWNLOAD}")
    try:
        with path.open("rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); re-download it with {DOWNLOAD}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise DataError(f"{path} is not a COCO instances file (needs 'images' and 'annotations' lists)")
    return data


def _image_dir(src: Path, split: str) -> Path:
    for cand in (src / split, src / "images" / split):
        if cand.is_dir():
            return cand
    raise DataError(f"missing image folder {src / split} (or {src / 'images' / split}); download and unzip "
                    f"{split}.zip with {DOWNLOAD}")


def yolo_lines(data: dict, source: str) -> dict[int, list[str]]:
    """Per image id, the YOLO label lines `class cx cy w h` (normalised by the json's width/height).

    Like Ultralytics' own `convert_coco(cls91to80=True)`: crowd annotations are skipped, boxes with w or h <= 0 are
    dropped. Unlike it, boxes are first clipped to the image: Ultralytics rejects an image whose labels leave [0, 1]
    (all its boxes are lost), and clipping is a no-op for the in-image boxes of real COCO.
    """
    imgs = {}
    for im in data["images"]:
        try:
            imgs[im["id"]] = (float(im["width"]), float(im["height"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: image entry without numeric id/width/height: {im!r}") from None
    out: dict[int, list[str]] = {i: [] for i in imgs}
    for a in data["annotations"]:
        if a.get("iscrowd", 0):
            continue
        try:
            cls = COCO91_TO_COCO80[a["category_id"]]
        except KeyError:
            raise DataError(f"{source}: annotation {a.get('id')} has category_id {a.get('category_id')!r}, which is "
                            "not one of the 80 COCO categories") from None
        if a.get("image_id") not in imgs:
            raise DataError(f"{source}: annotation {a.get('id')} refers to unknown image_id {a.get('image_id')!r}")
        W, H = imgs[a["image_id"]]
        x, y, w, h = (float(v) for v in a["bbox"])
        x0, y0 = min(max(x, 0.0), W), min(max(y, 0.0), H)
        x1, y1 = min(max(x + w, 0.0), W), min(max(y + h, 0.0), H)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        cx, cy, bw, bh = (x0 + x1) / 2 / W, (y0 + y1) / 2 / H, (x1 - x0) / W, (y1 - y0) / H
        out[a["image_id"]].append(f"{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return out


def _link_or_copy(src: Path, dst: Path, mode: str) -> None:
    """Place `src` (file or folder) at `dst`: a symlink by default (COCO images are ~20 GB), or a real copy."""
    if dst.exists() or dst.is_symlink():
        if dst.resolve() == src.resolve():
            return
        if dst.is_symlink():
            dst.unlink()
        elif dst.is_dir():
            if mode == "copy":  # refresh the copy in place: copy missing files only
                shutil.copytree(src, dst, dirs_exist_ok=True)
                return
            raise DataError(f"{dst} already exists and is not a link to {src}; remove it or use images='copy'")
        else:
            dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        dst.symlink_to(src.resolve(), target_is_directory=src.is_dir())
    elif src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def read_image_list(path: Path) -> list[str]:
    """File names listed in a Darknet/yolov3 list (`5k.part`, `5k.txt`, ...). Each line may be an absolute path,
    `../coco/images/val2014/X.jpg`, `/images/val2014/X.jpg`, ...; only the file name is used."""
    if not path.is_file():
        raise DataError(f"missing image list {path}; fetch Darknet's 5k.part / trainvalno5k.part with {DOWNLOAD}")
    names = []
    for n, line in enumerate(read_text(path, "image list", DataError).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        name = re.split(r"[\\/]", line)[-1]
        if not _NAME_2014.match(name):
            raise DataError(f"{path}:{n}: {line!r} is not a COCO-2014 image path (COCO_<train|val>2014_<id>.jpg)")
        names.append(name)
    if not names:
        raise DataError(f"image list {path} is empty")
    return names


def _find_list(src: Path, given: str | Path | None, stem: str) -> Path:
    if given is not None:
        return Path(given)
    for cand in (src / f"{stem}.part", src / f"{stem}.txt"):
        if cand.is_file():
            return cand
    raise DataError(f"missing {src / (stem + '.part')} (Darknet's {stem} list of COCO 2014); fetch it with "
                    f"{DOWNLOAD} --year 2014 or pass it explicitly")


def convert_coco(
    src: str | Path,
    out: str | Path,
    year: Year = "2014",
    *,
    minival_list: str | Path | None = None,
    trainval_list: str | Path | None = None,
    images: Literal["symlink", "copy"] = "symlink",
) -> Path:
    """Convert a raw COCO root (see the module docstring) into the Ultralytics layout under `out`; return the YAML.

    2014 uses the split of SLR paper Table 3 (Darknet's, as in ultralytics/yolov3): `val` = the 5k minival list,
    `train` = trainvalno5k (train2014 + the rest of val2014); pass the two Darknet/yolov3 list files, or leave them
    None to take `<src>/5k.part|5k.txt` and `<src>/trainvalno5k.part|.txt`. 2017 uses train2017 / val2017 whole.
    Every listed image must exist both in its split's `instances_*.json` and on disk; the two 2014 lists must not
    overlap.
    """
    year = str(year)  # type: ignore[assignment]
    if year not in SPLITS:
        raise DataError(f"COCO year must be 2014 or 2017, got {year!r}")
    if images not in ("symlink", "copy"):
        raise DataError(f"images must be 'symlink' or 'copy', got {images!r}")
    src, out = Path(src).resolve(), Path(out).resolve()
    require_dir(src, "COCO source folder", DataError, hint=f"make it with {DOWNLOAD}")
    out.mkdir(parents=True, exist_ok=True)
    train_split, val_split = SPLITS[year]

    present: dict[str, dict[str, int]] = {}  # split -> file_name -> image id, for images in the json AND on disk
    for split in (train_split, val_split):
        ann_path = src / "annotations" / f"instances_{split}.json"
        data = _load_instances(ann_path)
        img_dir = _image_dir(src, split)
        on_disk = set(os.listdir(img_dir))
        present[split] = {im["file_name"]: im["id"] for im in data["images"] if im["file_name"] in on_disk}
        labels = yolo_lines(data, str(ann_path))
        label_dir = out / "labels" / split
        label_dir.mkdir(parents=True, exist_ok=True)
        for im in data["images"]:
            if im["file_name"] not in on_disk:
                continue  # not downloaded: no label; the list check below names it if a list needs it
            text = "\n".join(labels[im["id"]])
            (label_dir / (Path(im["file_name"]).stem + ".txt")).write_text(text + "\n" if text else "")
        _link_or_copy(img_dir, out / "images" / split, images)
        _link_or_copy(ann_path, out / "annotations" / ann_path.name, images)

    def entries(names: Iterable[str], what: str, allowed: tuple[str, ...]) -> list[tuple[str, str, int]]:
        rows, missing = [], []
        for name in names:
            split = _NAME_2014.match(name).group(1) if year == "2014" else val_split  # type: ignore[union-attr]
            if split not in allowed:
                raise DataError(f"{what} lists {name}, but it may only hold {' / '.join(allowed)} images")
            if name in present[split]:
                rows.append((split, name, present[split][name]))
            else:
                missing.append(name)
        if missing:
            raise DataError(f"{what}: {len(missing)} listed images are missing from instances_*.json or from the "
                            f"image folder, e.g. {', '.join(missing[:3])}; re-run {DOWNLOAD}")
        return rows

    if year == "2014":
        mini = _find_list(src, minival_list, "5k")
        trval = _find_list(src, trainval_list, "trainvalno5k")
        val_rows = entries(read_image_list(mini), str(mini), (val_split,))
        train_rows = entries(read_image_list(trval), str(trval), (train_split, val_split))
        overlap = {n for _, n, _ in val_rows} & {n for _, n, _ in train_rows}
        if overlap:
            raise DataError(f"{mini} and {trval} share {len(overlap)} images (e.g. {sorted(overlap)[0]}); "
                            "they must be Darknet's disjoint 5k / trainvalno5k lists")
    else:
        train_rows = [(train_split, n, i) for n, i in sorted(present[train_split].items())]
        val_rows = [(val_split, n, i) for n, i in sorted(present[val_split].items())]
    if not val_rows:
        raise DataError(f"no {val_split} images found under {src}; download them with {DOWNLOAD}")

    train_list, val_list = LIST_FILES[year]
    for fname, rows in ((train_list, train_rows), (val_list, val_rows)):
        # "./" lines resolve against the list file's folder (ultralytics 8.4 `data/base.py`), so the dataset folder
        # stays relocatable.
        (out / fname).write_text("".join(f"./images/{split}/{name}\n" for split, name, _ in rows))

    cfg: dict[str, Any] = {
        "path": str(out),
        "train": train_list,
        "val": val_list,
        "names": dict(enumerate(COCO80_NAMES)),
        "coco_year": int(year),
        "coco_gt_json": str(out / "annotations" / f"instances_{val_split}.json"),
        "coco_pred_category_ids": "class+1",
        "coco_val_image_ids": sorted(i for _, _, i in val_rows),
    }
    yml = out / yaml_name(year)
    header = ("# Written by data_scripts/coco_convert.py (adapters/detection/coco_data.py). No `download:` key on "
              "purpose:\n# a missing path must fail, not fetch ~20 GB. coco_* keys are read by the harness's COCO "
              "evaluator.\n")
    ids = cfg.pop("coco_val_image_ids")
    # Block style for the readable part (names as in the package's coco.yaml); the id list as wrapped flow lines.
    text = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=120)
    text += yaml.safe_dump({"coco_val_image_ids": ids}, default_flow_style=None, width=120)
    yml.write_text(header + text)
    return yml


def check_coco_layout(root: str | Path, year: str | None = None) -> None:
    """Raise DataError naming the first missing piece of a converted COCO folder and the script that makes it."""
    root = require_dir(root, "COCO folder", DataError, hint=f"make it with {DOWNLOAD} then {CONVERT}")
    years = [str(year)] if year is not None else [y for y in SPLITS if (root / yaml_name(y)).is_file()]
    if not years:
        raise DataError(f"no {yaml_name('2014')} or {yaml_name('2017')} in {root}; make it with {CONVERT}")
    for y in years:
        if y not in SPLITS:
            raise DataError(f"COCO year must be 2014 or 2017, got {y!r}")
        yml = root / yaml_name(y)
        if not yml.is_file():
            raise DataError(f"missing {yml}; make it with {CONVERT} --year {y}")
        cfg = load_yaml(yml, "COCO dataset YAML", DataError, hint=f"re-make it with {CONVERT}")
        keys = ("path", "train", "val", "names", "coco_gt_json", "coco_val_image_ids")
        if not isinstance(cfg, dict) or any(k not in cfg for k in keys):
            raise DataError(f"{yml} lacks one of {', '.join(keys)}; re-make it with {CONVERT} --year {y}")
        base = Path(cfg["path"])
        gt = Path(cfg["coco_gt_json"])
        if not gt.is_file():
            raise DataError(f"missing {gt} (the evaluation ground truth); make it with {DOWNLOAD} and {CONVERT}")
        for split in SPLITS[y]:
            for sub, script in (("images", DOWNLOAD), ("labels", CONVERT)):
                if not (base / sub / split).is_dir():
                    raise DataError(f"missing folder {base / sub / split}; make it with {script} --year {y}")
        listing: dict[Path, set[str]] = {}
        for key in ("train", "val"):
            lst = base / cfg[key]
            if not lst.is_file():
                raise DataError(f"missing image list {lst}; make it with {CONVERT} --year {y}")
            for n, line in enumerate(read_text(lst, "image list", DataError).splitlines(), 1):
                if not line.strip():
                    continue
                img = base / line[2:] if line.startswith("./") else Path(line)
                lab = base / "labels" / img.parent.name / (img.stem + ".txt")
                for path, script in ((img, DOWNLOAD), (lab, CONVERT)):
                    if path.parent not in listing:
                        listing[path.parent] = set(os.listdir(path.parent)) if path.parent.is_dir() else set()
                    if path.name not in listing[path.parent]:
                        raise DataError(f"missing {path} (listed in {lst.name}, line {n}); make it with {script} "
                                        f"--year {y}")
