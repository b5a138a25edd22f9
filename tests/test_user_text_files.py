"""Users' text files (YAML configs, label files, lists): alias bombs, deep nesting, non-UTF-8 bytes and folders given
for files end in one line naming the file, fast and in bounded memory."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from harness.errors import DataError, UserError
from harness.userfiles import read_text
from harness.yamlio import MAX_NODES, load_yaml

# ~800 bytes that PyYAML would turn into 9**9 (387 million) "lol"s on first str()/copy
BOMB = "\n".join(["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
                 + [f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefgh", "bcdefghi")]
                 + ["methods: *i", "task: digits", ""])


def _one_line(exc: BaseException) -> str:
    assert str(exc) and "\n" not in str(exc)
    return str(exc)


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_alias_bomb_refused_fast_in_bounded_memory(tmp_path):
    path = _write(tmp_path, "sweep.yaml", BOMB)
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(UserError) as err:
            load_yaml(path, "sweep config")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - t0 < 5 and peak < 50e6
    assert str(path) in _one_line(err.value) and "alias" in str(err.value)


@pytest.mark.parametrize("content, words", [
    ("a: &a [1, *a]\n", "cycle"),
    ("[" * 100_000 + "]" * 100_000, "levels deep"),
    ("a:\n" + "".join(" " * i + "-\n" for i in range(3000)), "too deeply"),
    # a 1000-item list aliased just often enough to pass the bound: the bound is exact, not a guess about bombs
    ("a: &a [" + ",".join(["1"] * 1000) + "]\nb: [" + ",".join(["*a"] * (MAX_NODES // 1000)) + "]\n", "more than"),
])
def test_pathological_yaml_refused(tmp_path, content, words):
    path = _write(tmp_path, "c.yaml", content)
    with pytest.raises(UserError, match=words) as err:
        load_yaml(path, "prune config")
    assert str(path) in _one_line(err.value)


def test_anchors_and_merge_keys_still_work(tmp_path):
    path = _write(tmp_path, "c.yaml", "base: &b {epochs: 2, lr: 0.1}\nrun: {<<: *b, lr: 0.01}\nrates: &r [2, 4]\n"
                                      "again: *r\n")
    assert load_yaml(path, "sweep config") == {"base": {"epochs": 2, "lr": 0.1}, "run": {"epochs": 2, "lr": 0.01},
                                               "rates": [2, 4], "again": [2, 4]}


def test_non_utf8_directory_missing_and_bom(tmp_path):
    bad = _write(tmp_path, "c.yaml", b"name: caf\xe9\n")
    with pytest.raises(UserError, match=r"is not UTF-8 text \(byte 9") as err:
        load_yaml(bad, "sweep config")
    assert str(bad) in _one_line(err.value)
    with pytest.raises(UserError, match="is a directory, not a file"):
        load_yaml(tmp_path, "sweep config")
    with pytest.raises(UserError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml", "sweep config")
    assert load_yaml(_write(tmp_path, "bom.yaml", "\ufeffa: 1\n"), "x") == {"a": 1}
    with pytest.raises(DataError, match=r"label file .* is not UTF-8 text .*; see the docs"):
        read_text(bad, "label file", DataError, hint="see the docs")


def test_prune_config_reads_through_the_bounded_loader(tmp_path):
    from harness.sparsity import SparsityPlan

    with pytest.raises(UserError, match="alias"):
        SparsityPlan.from_yaml(_write(tmp_path, "p.yaml", BOMB))


# ---- data files of the tasks ----------------------------------------------------------------------------------
def test_tusimple_label_and_list_files(tmp_path):
    from adapters.lanes.convert import read_json_lines
    from adapters.lanes.tusimple_data import read_test_list, read_train_list

    with pytest.raises(DataError, match="not UTF-8") as err:
        read_json_lines(_write(tmp_path, "label.json", b'{"raw_file": "\xff"}\n'))
    _one_line(err.value)
    with pytest.raises(DataError, match="is a directory, not a file"):
        read_json_lines(tmp_path)
    with pytest.raises(DataError, match="line 2: not usable JSON"):
        read_json_lines(_write(tmp_path, "big.json", '{"raw_file": "a"}\n{"x": ' + "9" * 5000 + "}\n"))
    _write(tmp_path, "train_gt.txt", b"clips/\xff.jpg seg.png 1 1 1 1\n")
    _write(tmp_path, "test.txt", b"clips/\xfe.jpg\n")
    for reader in (read_train_list, read_test_list):
        with pytest.raises(DataError, match="not UTF-8") as err:
            reader(tmp_path)
        _one_line(err.value)


def test_coco_lists_and_yamls(tmp_path):
    from adapters.detection.coco_data import read_image_list
    from harness.tasks import TaskConfig, build_task

    with pytest.raises(DataError, match="image list .* is not UTF-8"):
        read_image_list(_write(tmp_path, "5k.part", b"COCO_val2014_000000000001.jpg\n\xff\n"))
    bad_yaml = _write(tmp_path, "data.yaml", b"train: a\nval: b\nnames: [caf\xe9]\n")
    with pytest.raises(DataError, match="dataset YAML .* is not UTF-8") as err:
        build_task("coco", TaskConfig(model="yolov3-tiny", data=bad_yaml))
    _one_line(err.value)
    with pytest.raises(DataError, match="alias"):
        build_task("coco", TaskConfig(model="yolov3-tiny", data=_write(tmp_path, "bomb.yaml", BOMB)))


def test_files_given_for_folders(tmp_path):
    from adapters.detection.coco_data import check_coco_layout, convert_coco
    from adapters.lanes.tusimple_data import check_layout

    a_file = _write(tmp_path, "data.txt", "x")
    for call in (lambda: check_coco_layout(a_file), lambda: convert_coco(a_file, tmp_path / "out", "2014"),
                 lambda: check_layout(a_file)):
        with pytest.raises(DataError, match="is a file, not a folder") as err:
            call()
        _one_line(err.value)
    with pytest.raises(DataError, match="does not exist"):
        check_layout(tmp_path / "missing")
