"""Typed settings from one source: coercion, bounds, unknown keys, and the CLI's one-line usage errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import build_parser, main
from harness.config import MethodSettings, RunConfig
from harness.errors import UserError
from harness.options import build, coerce


def cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("tp,value,expected", [
    (int, "3", 3), (float, "1e-3", 1e-3), (bool, "true", True), (bool, "0", False), (list[float], "4,10", [4.0, 10.0]),
    (list[str], ["slr", "admm"], ["slr", "admm"]), (tuple[int, int], "[64, 160]", (64, 160)),
    (int | None, "none", None), (dict, '{"a": 1}', {"a": 1}),
])
def test_coerce(tp, value, expected):
    assert coerce(tp, value, "x") == expected


@pytest.mark.parametrize("tp,value", [(int, "abc"), (int, "9" * 5000), (int, 1.5), (bool, "maybe"),
                                      (list[str], 5), (float, True), (str, ["a"])])
def test_coerce_rejects(tp, value):
    with pytest.raises(UserError):
        coerce(tp, value, "x")


def test_yaml_list_is_not_split_into_letters():
    with pytest.raises(UserError):
        coerce(list[str], {"a": 1}, "methods")
    assert coerce(list[str], "slr", "methods") == ["slr"]  # a scalar is one method, not 's', 'l', 'r'


@pytest.mark.parametrize("values,needle", [
    ({"lr": "nan"}, "finite"), ({"lr": "-1"}, "lr must be > 0"), ({"seed": "-1"}, "seed must be >= 0"),
    ({"batch_size": "-5"}, "batch_size must be >= 1"), ({"workers": "-1"}, "workers must be >= 0"),
    ({"epochs": "-1"}, "epochs must be >= 0"), ({"early_stop": "nan"}, "finite"), ({"rate": "1"}, "> 1"),
    ({"bogus": 1}, "unknown key 'bogus'"), ({"amp": "fp8"}, "choose one of: bf16, fp16"),
])
def test_run_config_bounds(values, needle):
    with pytest.raises(UserError, match=needle):
        RunConfig.from_dict(values)


@pytest.mark.parametrize("values,needle", [({"M": "0"}, "M must be > 0"), ({"update_every": "0"}, ">= 1"),
                                           ({"rho": "-1"}, "rho must be > 0"), ({"mode": "x"}, "paper, reference")])
def test_method_settings_bounds(values, needle):
    with pytest.raises(UserError, match=needle):
        MethodSettings.from_dict(values)


def test_old_slr_overrides_still_read():
    s = MethodSettings.from_dict({"slr_overrides": {"norm_agg": "sum"}, "seed": 3})
    assert s.slr_overrides() == {"norm_agg": "sum"}


def test_task_options_are_typed_and_unknown_keys_listed():
    from adapters.lanes.task import TuSimpleTask

    opts = TuSimpleTask.parse_options({"aux": "1", "input_size": "64x160", "griding": "9"})
    assert (opts.aux, opts.input_size, opts.griding) == (True, (64, 160), 9)
    with pytest.raises(UserError, match="unknown key 'gridding'; valid: aux, griding, input_size, augment"):
        TuSimpleTask.parse_options({"gridding": 9})
    with pytest.raises(UserError, match="input_size"):
        TuSimpleTask.parse_options({"input_size": "65x160"})
    from adapters.classification import DigitsTask

    with pytest.raises(UserError, match="unknown key 'foo'"):
        DigitsTask.parse_options({"foo": "1"})


@pytest.mark.parametrize("args,needle", [
    (["runn"], "invalid choice: 'runn'"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--lr", "nan"], "finite"),
    (["run", "--M", "0", "--method", "slr"], "M must be > 0"),
    (["run", "--update-every", "0"], "--update-every must be >= 1"),
    (["run", "--prune-pattern", "(", "--method", "slr"], "not a valid regular expression"),
    (["run", "--opt", "foo=1"], "unknown key 'foo'"),
    (["run", "--rate", "4,abc", "--method", "slr"], "expects a number"),
    (["eval", "--task", "tusimple", "--pred", "x[/b]", "--gt", "x[/b]"], "x[/b]"),
    (["export"], "required"),
])
def test_usage_errors_are_one_line(workdir, capsys, args, needle):
    code, _, err = cli(args, capsys)
    assert code == 2 and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_help_and_version(capsys):
    assert cli(["-h"], capsys)[0] == 0
    code, out, _ = cli(["--version"], capsys)
    assert code == 0 and out.startswith("prunebench ")
    code, out, _ = cli(["run", "--help"], capsys)
    assert code == 0 and "--stage2-numerator" in out and "--rounds" in out and "--seed" in out


def test_dry_run_lists_runs_without_running(workdir, capsys):
    code, out, _ = cli(["run", "--task", "tusimple", "--dry-run"], capsys)
    assert code == 0 and len(out.strip().splitlines()) == 24  # 8 Table-4 rates x 3 methods, listed not run
    code, out, _ = cli(["run", "--dry-run"], capsys)
    assert code == 0 and len(out.strip().splitlines()) == 9 and not (workdir / "prunebench.sqlite").exists()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="-=abcdefghijklmnoprstuvwxyz0123456789.,[]/ ", max_size=12), max_size=4))
def test_any_cli_arguments_end_in_exit_0_or_one_line_error(argv):
    parser = build_parser()
    try:
        ns = parser.parse_args(["run", "--dry-run", *argv])
        from harness.cli import run_configs

        run_configs(ns)
    except UserError:
        pass  # main() prints it as one `error:` line; any other exception fails the property
    except SystemExit as exc:  # --help / --version inside the generated arguments
        assert exc.code == 0
