"""`edgevit search` and its latency table: the table's sum of parts predicts whole-model instruction counts on
the target cores; the search runs end to end on the embedded storage, keeps every trial across a Ctrl-C,
and lets a second worker join the same study. The table tests need the aarch64 environment (`make
arm-setup`; skipped with the reason otherwise); the search itself only reads the committed table."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import time

import pytest
from conftest import ROOT, assert_user_error, run_cli, start_cli

SMALL = ("--data", "digits", "--latency-img", "64", "--references", "none", "--no-progress", "--sampler-seed", "0",
         "--no-int8-check")


def _rows(out) -> list[dict]:
    with open(out / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_designs_build_the_network_their_parts_describe():
    import edgevit
    from search.space import KNOWN
    from search.table import random_design

    rng = random.Random(1)
    for design in [*KNOWN.values(), *(random_design(rng) for _ in range(5))]:
        model = edgevit.create_model("edgevit_xs", num_classes=62, img_size=64, **design.model_kwargs())
        kinds = [type(b.mixer).__name__ for stage in model.stages for b in stage if hasattr(b, "mixer")]
        parts = design.parts(64, 62)
        assert [p.kind for p in parts if p.kind in ("local", "attn")] == \
               ["attn" if k == "Attention" else "local" for k in kinds]
        assert sum(p.kind == "down" for p in parts) == 3 and parts[0].kind == "stem" and parts[-1].kind == "head"
    assert KNOWN["edgevit_xs"].model_kwargs()["widths"] == edgevit.models.efficientformer.SIZES["xs"].widths
    assert {"edgevit_xxs", "edgevit_xs"} <= set(KNOWN) and "edgevit_s" not in KNOWN   # s: 256 channels, 5 heads


@pytest.fixture(scope="module")
def arm_env():
    from contract.errors import UserError
    from device_sim.arm.runner import find_env

    try:
        return find_env(None)
    except UserError as e:
        pytest.skip(f"no aarch64 environment ({e})")


def _validate(arm_env, n: int, tmp_path):
    from search.table import validate

    rows = validate(n, 64, ("cortex-a53", "cortex-a55"), tmp_path, seed=7, log=lambda *_: None)
    worst = max(rows, key=lambda r: abs(r["error"]))
    assert abs(worst["error"]) <= 0.03, worst
    assert len({r["counted"] for r in rows}) == len(rows)     # distinct designs, distinct counts: nothing cached wrong
    return rows


def test_the_table_predicts_whole_model_counts(arm_env, tmp_path):
    _validate(arm_env, 2, tmp_path)


@pytest.mark.slow
def test_the_table_predicts_ten_random_designs(arm_env, tmp_path):
    _validate(arm_env, 10, tmp_path)


def test_make_search_end_to_end_on_the_embedded_storage(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.run(["make", "--no-print-directory", "search", f"SEARCH_OUT={out}",
                           "SEARCH_ARGS=" + " ".join(("--trials", "2", "--epochs", "1", *SMALL[:-1]))],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(out)
    trained = [r for r in rows if r["state"] == "complete"]
    assert len(trained) == 2 and (out / "study.journal").is_file() and (out / "pareto.png").is_file()
    for r in trained:   # every trained design was within budget on both profiles
        assert float(r["smartwatch_ratio"]) <= 0.8 and float(r["ar-glasses_ratio"]) <= 0.8
        assert 0.0 <= float(r["val_acc"]) <= 1.0
    for r in rows:
        if r["state"] == "pruned":
            assert r["rejected"].startswith("over budget")
            assert max(float(r["smartwatch_ratio"]), float(r["ar-glasses_ratio"])) > 0.8
    assert "best:" in proc.stdout


def test_a_search_resumes_after_ctrl_c_without_losing_a_trial(tmp_path):
    out = tmp_path / "s"
    first = run_cli("search", "--out", str(out), "--trials", "1", "--epochs", "6", *SMALL)   # a folder continues
    assert first.returncode == 0, first.stderr                                            # with its own recipe
    before = {r["trial"]: r["val_acc"] for r in _rows(out) if r["state"] == "complete"}
    proc = start_cli("search", "--out", str(out), "--trials", "3", "--epochs", "6", *SMALL)
    t0 = time.time()
    while len(list((out / "trials").iterdir())) < 2 and time.time() - t0 < 300:   # a second training started
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    rows = _rows(out)
    assert {r["trial"]: r["val_acc"] for r in rows if r["state"] == "complete"} == before   # nothing lost or changed
    assert any(r["state"] == "fail" for r in rows)        # the interrupted trial is on record, not deleted
    again = run_cli("search", "--out", str(out), "--trials", "3", "--epochs", "6", *SMALL)
    assert again.returncode == 0, again.stderr
    rows = _rows(out)
    done = {r["trial"]: r["val_acc"] for r in rows if r["state"] == "complete"}
    assert len(done) >= 3 and all(done[k] == v for k, v in before.items())
    failed = [r["trial"] for r in rows if r["state"] == "fail"]
    assert failed and all(any(r["retry_of"] == f for r in rows) for f in failed)   # its design was trained again


def test_a_second_worker_joins_the_same_study(tmp_path):
    out = tmp_path / "s"
    args = ("search", "--out", str(out), "--trials", "4", "--epochs", "2", *SMALL)
    first = run_cli("search", "--out", str(out), "--trials", "1", "--epochs", "2", *SMALL)   # creates the study
    assert first.returncode == 0, first.stderr
    workers = [start_cli(*args), start_cli(*args)]
    results = [w.communicate(timeout=900) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [r[1] for r in results]
    rows = [r for r in _rows(out) if r["state"] == "complete"]
    assert len(rows) >= 4
    assert len({r["worker"] for r in rows}) >= 2          # both processes trained designs of the one study


def test_search_refuses_bad_input_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert_user_error(run_cli("search", "--out", str(tmp_path), *SMALL), "holds files")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert_user_error(run_cli("search", "--out", str(tmp_path / "a"), "--max-ratio", "-1", *SMALL), "positive")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "b"), "--max-ratio", "0.8", "--max-ms", "3", *SMALL),
                      "not both")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "c"), "--profile", "nope", *SMALL), "nope")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "d"), "--references", "resnet50", "--data", "digits"),
                      "resnet50")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "e"), "--storage", "postgresql+psycopg://x@127.0.0.1:9/x",
                              *SMALL), "storage")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "f"), *SMALL, "--profile", ","), "no profile")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "g"), *SMALL, "--max-ratio", "inf"), "finite")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "h"), *SMALL, "--baseline", "nosuch"), "--baseline")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "i"), *SMALL, "--latency-img", "96"), "--latency-img")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "j"), *SMALL, "--max-ratio", "0.05"),
                      "loosen the budget to at least --max-ratio 0.")       # no design could ever meet it
    assert not any((tmp_path / n).exists() for n in "bcdefghij")
    (tmp_path / "file").write_text("mine")
    assert_user_error(run_cli("search", "--out", str(tmp_path / "file" / "s"), *SMALL), "choose a folder")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "search.json").write_text('{"mine": 1}')   # a user's file of that name is no search of ours
    assert_user_error(run_cli("search", "--out", str(mine), *SMALL), "holds files")
    assert (mine / "search.json").read_text() == '{"mine": 1}' and len(list(mine.iterdir())) == 1


def test_a_users_file_in_a_reference_folder_is_kept_and_named(tmp_path):
    from contract.errors import UserError
    from search.study import ProxyRecipe, proxy_train

    ref = tmp_path / "references" / "mobilenetv2_100"
    ref.mkdir(parents=True)
    (ref / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"notes\.txt.*move them out"):
        proxy_train("mobilenetv2_100", ProxyRecipe(data="digits", epochs=1), ref, None)
    assert [p.name for p in ref.iterdir()] == ["notes.txt"] and (ref / "notes.txt").read_text() == "mine"


def test_a_search_folder_continues_only_with_its_own_settings(tmp_path):
    out = tmp_path / "s"
    assert run_cli("search", "--out", str(out), "--trials", "1", "--epochs", "1", *SMALL).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = run_cli("search", "--out", str(out), "--trials", "2", "--epochs", "1", "--max-ratio", "0.5", *SMALL)
    assert_user_error(again, "another budget")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_postgres_script_never_removes_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "thesis.txt").write_text("precious")
    for cmd in ("stop", "start"):
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), cmd, str(tmp_path)], capture_output=True,
                              text=True)
        assert proc.returncode == 2 and "postgres.sh" in proc.stderr, proc.stderr
    assert (tmp_path / "thesis.txt").read_text() == "precious" and (tmp_path / "sub").is_dir()
    (tmp_path / "file").write_text("mine")
    for args, says in (([str(tmp_path / "new"), "abc"], "PORT must be a number"),
                       ([str(tmp_path / "it's")], "must not contain quotes"),
                       ([str(tmp_path / "file")], "is a file")):
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "start", *args], capture_output=True,
                              text=True)
        assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "sub", "thesis.txt"]


@pytest.mark.slow
def test_workers_share_a_study_on_postgresql(tmp_path):
    """The route for many machines: `--storage` a PostgreSQL URL. A real local server (Debian's package,
    started by scripts/postgres.sh; skipped when it cannot be had), two workers, stopped at the end."""
    import shutil
    import tempfile

    if os.geteuid() != 0 and shutil.which("pg_ctl") is None:
        pytest.skip("PostgreSQL is not installed and this user cannot install it (scripts/postgres.sh needs root)")
    pg = tempfile.mkdtemp(prefix="edgevit-pg-", dir="/tmp")   # the postgres user must reach it
    os.chmod(pg, 0o755)
    script = str(ROOT / "scripts" / "postgres.sh")
    started = subprocess.run(["bash", script, "start", f"{pg}/cluster", "55439"], capture_output=True, text=True)
    try:
        if started.returncode != 0:
            pytest.skip(f"no local PostgreSQL server: {started.stderr.strip()[-200:]}")
        url = started.stdout.strip().splitlines()[-1]
        args = ("search", "--storage", url, "--trials", "3", "--epochs", "1", *SMALL)
        workers = [start_cli(*args, "--out", str(tmp_path / "a")), start_cli(*args, "--out", str(tmp_path / "b"))]
        results = [w.communicate(timeout=900) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], [r[1] for r in results]
        rows = [r for r in _rows(tmp_path / "b") if r["state"] == "complete"]
        assert len(rows) >= 3 and len({r["worker"] for r in rows}) >= 2   # one study, both workers in it
        assert not (tmp_path / "a" / "study.journal").exists()             # the study is in the database
    finally:
        subprocess.run(["bash", script, "stop", f"{pg}/cluster"], capture_output=True)
        shutil.rmtree(pg, ignore_errors=True)


def test_design_params_round_trip():
    from search.space import KNOWN, design_from_params
    from search.table import random_design

    rng = random.Random(3)
    for d in [*KNOWN.values(), *(random_design(rng) for _ in range(20))]:
        assert design_from_params(d.params()) == d


def test_every_registered_model_is_counted_whole_in_the_committed_table():
    """A family member registered (a search's winner) without `make latency-table` could not be projected."""
    from search.table import MODELS, load_table, model_count

    table = load_table()
    for core in ("cortex-a53", "cortex-a55", "cortex-a76"):
        for img in table["img_sizes"]:
            for name in MODELS:
                assert model_count(name, img, core, table) > 0


def test_the_int8_check_keeps_a_users_files_in_its_folder(tmp_path):
    """The candidate export builds in a folder of its own: nothing a user (or another worker) put in the check's
    folder is removed."""
    from search.parts import export_part
    from search.space import Part

    out = tmp_path / "int8-check" / "part"
    (out / "work").mkdir(parents=True)
    (out / "work" / "mine.txt").write_text("mine")
    (out / "notes.txt").write_text("notes")
    model = export_part(Part("stem", 64, width=16), out)
    assert model.is_file() and (out / "work" / "mine.txt").read_text() == "mine"
    assert (out / "notes.txt").read_text() == "notes"
    assert sorted(p.name for p in out.iterdir()) == ["model.tflite", "notes.txt", "work"]   # its staging is gone


def test_a_journal_record_cut_by_a_crash_does_not_damage_the_study(tmp_path):
    """Optuna skips a last line without its newline, then appends the next record to it: the file would be
    damaged for good. The search cuts the torn bytes off first (kept beside the journal)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from search.study import _cut_torn_record

    journal = tmp_path / "study.journal"

    def study():
        return optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(journal))),
                                   load_if_exists=True)

    study().optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 4, "worker_id": "cra')       # the crash
    _cut_torn_record(journal)
    assert journal.read_bytes() == whole and (tmp_path / "study.journal.torn").read_bytes().startswith(b'{"op_code"')
    study().optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert [t.state.name for t in study().trials] == ["COMPLETE"] * 3    # readable again, nothing lost
    _cut_torn_record(journal)                                              # a whole journal is left alone
    assert len(study().trials) == 3
