"""Experiment identity: which records are the same experiment (seed aside), what differs, and leaderboard cells."""

from __future__ import annotations

from harness.identity import cell_groups, describe_difference, differing_keys, experiment_key
from tests.records_factory import make_record


def test_seed_and_execution_keys_do_not_change_the_key():
    a = make_record(seed=0)
    b = make_record(seed=3, store="other.sqlite", out="elsewhere", device="cuda", workers=8)
    assert experiment_key(a)[0] == experiment_key(b)[0]


def test_result_changing_keys_split_and_are_named():
    a, b = make_record(epochs=1), make_record(epochs=4)
    (ka, da), (kb, db) = experiment_key(a), experiment_key(b)
    assert ka != kb and differing_keys(da, db) == ["epochs"]
    assert describe_difference(da, db) == "epochs 1 vs 4"
    # a knob stored twice (settings and the method's resolved config) counts once: method_config is derived
    base = experiment_key(make_record())[1]
    c = experiment_key(make_record(**{"settings.rho": 1.0, "method_config.rho": 1.0}))[1]
    assert differing_keys(base, c) == ["settings.rho"]
    assert describe_difference(base, c) == "rho 0.1 vs 1"


def test_input_files_are_identified_by_content_hash_or_file_name():
    a = make_record(data="/home/a/digits", weights="/home/a/r18.pth")
    b = make_record(data="/scratch/b/digits", weights="/scratch/b/r18.pth")
    assert experiment_key(a)[0] == experiment_key(b)[0]  # same file names on two machines
    a["provenance"]["weights_sha256"], b["provenance"]["weights_sha256"] = "aa", "bb"
    assert differing_keys(experiment_key(a)[1], experiment_key(b)[1]) == ["weights_sha256"]
    a["task_info"]["data_fingerprint"], b["task_info"]["data_fingerprint"] = "f1", "f2"
    assert "data_fingerprint" in differing_keys(experiment_key(a)[1], experiment_key(b)[1])


def test_cells_separate_configs_align_methods_and_count_distinct_seeds():
    records = [make_record(m, seed=s, epochs=e) for m in ("slr", "admm") for e in (1, 4) for s in (0, 1)]
    records.append(make_record("slr", seed=0, epochs=1))  # the same seed run again: still n = 2
    records.append(make_record("admm", seed=2, epochs=4, status="interrupted"))  # not completed: ignored
    cells = cell_groups(records)
    assert [(c.rate, c.label) for c in cells] == [(4.0, "epochs=1"), (4.0, "epochs=4")]
    for c in cells:
        assert sorted(c.methods) == ["admm", "slr"]
        assert all(len(recs) == 2 for recs in c.methods.values())


def test_method_specific_resolved_keys_do_not_split_methods():
    # method_config holds what each method resolved from the shared settings (SLR has s0, magnitude has not): SLR and
    # magnitude of one experiment share a row; a shared setting that differs still splits it
    records = [make_record("slr"), make_record("magnitude")]
    del records[1]["config"]["method_config"]["s0"]
    cells = cell_groups(records)
    assert len(cells) == 1 and set(cells[0].methods) == {"slr", "magnitude"}
    split = cell_groups([make_record("slr", **{"settings.s0": s0}) for s0 in (0.01, 0.001)])
    assert [c.label for c in split] == ["s0=0.001", "s0=0.01"]


def test_rates_are_ordered_as_numbers():
    cells = cell_groups([make_record(rate=r) for r in (20.0, 4.0, 10.0)])
    assert [c.rate for c in cells] == [4.0, 10.0, 20.0]


def test_methods_run_with_different_shared_settings_are_not_one_row():
    cells = cell_groups([make_record("slr", epochs=4), make_record("admm", epochs=1), make_record("magnitude", epochs=4)])
    assert [(c.label, sorted(c.methods)) for c in cells] == [("epochs=1", ["admm"]), ("epochs=4", ["magnitude", "slr"])]
    same = cell_groups([make_record("slr"), make_record("admm"), make_record("magnitude")])
    assert [(c.label, sorted(c.methods)) for c in same] == [("", ["admm", "magnitude", "slr"])]


def test_an_unset_knob_is_the_same_as_an_absent_one():
    old, new = make_record(), make_record()
    new["config"]["new_knob"] = None  # a knob added in a later version, at its default
    assert experiment_key(old)[0] == experiment_key(new)[0]
    new["config"]["new_knob"] = 100
    assert describe_difference(experiment_key(old)[1], experiment_key(new)[1]) == "new_knob unset vs 100"
