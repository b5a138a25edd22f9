"""`benchmark eval` for TuSimple and COCO files: printed numbers, --json output, bad input as one line."""

from __future__ import annotations

import json

import pytest

from harness.cli import main

H = list(range(160, 720, 10))


def cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def write_lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def lane(x0, dx):
    return [x0 + dx * i for i in range(len(H))]


@pytest.fixture
def tusimple_files(tmp_path):
    gt = [{"raw_file": f"clips/a/{i}/20.jpg", "h_samples": H, "lanes": [lane(300, 2), lane(700, -2)]} for i in range(3)]
    pred = [{"raw_file": g["raw_file"], "lanes": [lane(300, 2), lane(900, 0)], "run_time": 10} for g in gt]
    return write_lines(tmp_path / "pred.json", pred), write_lines(tmp_path / "gt.json", gt)


def test_tusimple_json(tusimple_files, capsys):
    pred, gt = tusimple_files
    code, out, _ = cli(["eval", "--task", "tusimple", "--pred", str(pred), "--gt", str(gt), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    # one of two lanes right in each image; one false positive of two predictions; one miss of two GT lanes
    assert result == {"Accuracy": pytest.approx(50.0), "FP": pytest.approx(50.0), "FN": pytest.approx(50.0)}  # percent


def test_tusimple_text(tusimple_files, capsys):
    pred, gt = tusimple_files
    code, out, _ = cli(["eval", "--task", "tusimple", "--pred", str(pred), "--gt", str(gt)], capsys)
    assert code == 0 and "Accuracy: 50.00" in out


def test_tusimple_bad_line_is_one_line_error(tusimple_files, capsys):
    pred, gt = tusimple_files
    pred.write_text(pred.read_text() + "{not json\n")
    code, _, err = cli(["eval", "--task", "tusimple", "--pred", str(pred), "--gt", str(gt)], capsys)
    assert code == 2 and "line 4" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def coco_gt():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
                   {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [50, 50, 20, 20], "area": 400, "iscrowd": 0},
        ],
        "categories": [{"id": 3, "name": "car", "supercategory": "vehicle"}],
    }


def test_coco_json_both_backends(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(coco_gt()))
    dets = [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 30], "score": 0.9},
            {"image_id": 2, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.8}]
    pred = tmp_path / "dets.json"
    pred.write_text(json.dumps(dets))
    results = []
    for backend in ("faster-coco-eval", "pycocotools"):
        code, out, _ = cli(["eval", "--task", "coco", "--pred", str(pred), "--gt", str(gt), "--json",
                            "--backend", backend], capsys)
        assert code == 0
        results.append(json.loads(out))
    assert results[0]["AP50"] == pytest.approx(50.0, abs=1.0)  # one of two objects found, at the top score (percent)
    stats = [k for k in results[0] if not k.startswith("n_")]
    assert len(stats) == 12
    assert [results[0][k] for k in stats] == pytest.approx([results[1][k] for k in stats], abs=1e-4)


def test_coco_unknown_image_is_one_line(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(coco_gt()))
    pred = tmp_path / "dets.json"
    pred.write_text(json.dumps([{"image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    code, _, err = cli(["eval", "--task", "coco", "--pred", str(pred), "--gt", str(gt)], capsys)
    assert code == 2 and "99" in err and len(err.strip().splitlines()) == 1


def test_eval_unknown_task(tmp_path, capsys):
    code, _, err = cli(["eval", "--task", "imagenet", "--pred", "a", "--gt", "b"], capsys)
    assert code == 2 and "has no prediction-file scorer" in err and "coco, tusimple" in err
