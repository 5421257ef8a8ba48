"""The experiment store on its own (no jobs): a damaged index degrades per line, a lost index is rebuilt, ids are
unique across stores, and everything the store writes is private to the user."""

from __future__ import annotations

import json
import logging
import os
import re
import stat

import pytest

from nemorun_core.errors import ExperimentError
from nemorun_core.executors.files import StoreFileError, load_json, read_json, write_atomic
from nemorun_core.experiment.store import Store

ID = re.compile(r"[A-Za-z0-9_.\-]+_\d{8}_\d{6}_[0-9a-f]{6}")


def _experiment(store: Store, name: str, **fields) -> str:
    """An experiment the way materialize leaves one: a directory with experiment.json, and its index line."""
    exp_id, exp_dir = store.create_experiment(name)
    meta = {"id": exp_id, "name": name, "title": fields.get("title", name), "tags": fields.get("tags", []),
            "created_at": fields.get("created_at", 1.0), "tasks": [{"name": "t"}]}
    store.write_json(os.path.join(exp_dir, "experiment.json"), meta)
    store.record(exp_id, name=name, title=meta["title"], tags=meta["tags"], created_at=meta["created_at"],
                 state="RUNNING", tasks=1, dir=exp_dir)
    return exp_id


def _index(store: Store) -> str:
    return os.path.join(store.root, "index.jsonl")


def test_ids_are_unique_across_stores_in_the_same_second(tmp_path):
    a, b = Store(str(tmp_path / "a")), Store(str(tmp_path / "b"))
    stamp = 1_800_000_000.0
    ids = {a.create_experiment("train", stamp)[0], b.create_experiment("train", stamp)[0],
           a.create_experiment("train", stamp)[0]}
    assert len(ids) == 3
    assert all(ID.fullmatch(i) and i.startswith("train_") for i in ids), ids


def test_bad_index_lines_are_skipped_with_a_warning_naming_file_and_line(tmp_path, caplog):
    store = Store(str(tmp_path / "home"))
    first = _experiment(store, "first", created_at=1.0)
    second = _experiment(store, "second", created_at=2.0)
    good = open(_index(store), "rb").read()
    bad = [b"{}", b"[1, 2]", b'"x"', b"\xff\xfe\x00garbage", b'{"title": "no id"}', b'{"id": "../escape"}',
           b"not json at all", b'{"id": 7}']
    with open(_index(store), "wb") as f:
        f.write(b"\n".join(bad) + b"\n" + good)
    with caplog.at_level(logging.WARNING):
        entries = store.list()
    assert [e["id"] for e in entries] == [first, second]
    for number in range(1, len(bad) + 1):
        assert f"{_index(store)} line {number}:" in caplog.text
    assert "not UTF-8" in caplog.text and "no experiment id" in caplog.text and "a JSON list" in caplog.text
    assert store.find_by_title("second") == second
    assert store.experiment_dir(first).endswith(first)


def test_fields_of_the_wrong_type_are_dropped_not_fatal(tmp_path, caplog):
    store = Store(str(tmp_path / "home"))
    exp_id = _experiment(store, "typed", tags=["a"])
    store.record(exp_id, tags="not-a-list", created_at="yesterday", state="\x1b[2J", title=["x"], tasks=True)
    with caplog.at_level(logging.WARNING):
        [entry] = store.list()
    assert entry["tags"] == ["a"] and entry["created_at"] == 1.0 and entry["state"] == "RUNNING"
    assert entry["title"] == "typed" and entry["tasks"] == 1
    assert "field 'state'" in caplog.text and "field 'tags'" in caplog.text


def test_a_torn_last_line_is_ended_by_the_next_append(tmp_path):
    store = Store(str(tmp_path / "home"))
    first = _experiment(store, "first")
    with open(_index(store), "ab") as f:
        f.write(b'{"id": "torn_by_a_cra')  # a writer killed mid-line
    assert [e["id"] for e in store.list()] == [first]  # the torn tail is not damage worth a warning
    second = _experiment(store, "second", created_at=2.0)
    assert [e["id"] for e in store.list()] == [first, second]


@pytest.mark.parametrize("loss", ["emptied", "deleted", "garbled"])
def test_a_lost_index_is_rebuilt_from_the_experiment_directories(tmp_path, loss, caplog):
    store = Store(str(tmp_path / "home"))
    first = _experiment(store, "first", title="the first", tags=["x"], created_at=1.0)
    second = _experiment(store, "second", created_at=2.0)
    store.write_json(os.path.join(store.experiments_dir, first, "outcome.json"), {"state": "SUCCEEDED"})
    os.mkdir(os.path.join(store.experiments_dir, "half_made_20250101_000000_abcdef"))  # no experiment.json
    if loss == "emptied":
        open(_index(store), "w").close()
    elif loss == "deleted":
        os.remove(_index(store))
    else:
        with open(_index(store), "wb") as f:
            f.write(b"\x00\x01\x02\n{}\n")
    with caplog.at_level(logging.WARNING):
        entries = store.list()
    assert [e["id"] for e in entries] == [first, second]
    assert entries[0]["title"] == "the first" and entries[0]["tags"] == ["x"] and entries[0]["state"] == "SUCCEEDED"
    assert "rebuilt it from 2 experiment directories" in caplog.text
    # saved: the next reader reads the index again, and a garbled one is kept aside for a person
    assert [json.loads(line)["id"] for line in open(_index(store))] == [first, second]
    assert os.path.exists(_index(store) + ".damaged") == (loss == "garbled")


def test_a_store_that_is_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "home"
    path.write_text("not a directory")
    store = Store(str(path))
    for call in (store.list, lambda: store.create_experiment("x"), lambda: store.experiment_dir("x"),
                 lambda: store.record("x", state="RUNNING")):
        with pytest.raises(ExperimentError, match=r"is a file, not a directory; point NEMORUN_HOME"):
            call()


def test_an_experiment_the_index_lists_without_its_directory(tmp_path):
    store = Store(str(tmp_path / "home"))
    gone = _experiment(store, "gone")
    kept = _experiment(store, "kept", created_at=2.0)
    os.rename(os.path.join(store.experiments_dir, gone), str(tmp_path / "moved"))
    with pytest.raises(ExperimentError, match=r"is listed in .*index.jsonl but its directory .* is gone.*forget"):
        store.experiment_dir(gone)
    assert store.experiment_dir(kept)
    store.forget(gone)
    assert [e["id"] for e in store.list()] == [kept]


def test_strict_reads_name_the_damaged_file(tmp_path):
    path = str(tmp_path / "f.json")
    for raw, problem in ((b"\xff\xd8binary", "not UTF-8"), (b'{"a": ', "not valid JSON")):
        with open(path, "wb") as f:
            f.write(raw)
        with pytest.raises(StoreFileError, match=re.escape(path) + ".*" + problem):
            load_json(path)
        assert read_json(path) is None  # the tolerant reader of executors stays tolerant
    open(path, "w").close()
    assert load_json(path) is None
    with pytest.raises(StoreFileError, match="is empty"):
        load_json(path, empty_ok=False)


def test_what_the_store_writes_is_private(tmp_path):
    old = os.umask(0o022)  # the usual umask: would give 0755 / 0644
    try:
        store = Store(str(tmp_path / "deep" / "home"))
        exp_id = _experiment(store, "private")
        write_atomic(os.path.join(store.experiments_dir, exp_id, "x.bin"), b"\x00")
    finally:
        os.umask(old)
    for root, dirs, files in os.walk(tmp_path / "deep"):
        for name in dirs:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o700, name
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o600, name
            assert ".tmp." not in name


def test_the_environment_snapshot_redacts_secret_arguments():
    from nemorun_core.experiment.envsnap import redacted_argv

    argv = ["train.py", "--token", "t0p", "--api-key=k3y", "model.db_password=pw", "lr=0.1", "--steps", "3",
            "-----BEGIN RSA PRIVATE KEY-----\nabc"]
    assert redacted_argv(argv) == ["train.py", "--token", "<redacted>", "--api-key=<redacted>",
                                   "model.db_password=<redacted>", "lr=0.1", "--steps", "3", "<redacted>"]


def test_compact_keeps_one_line_per_experiment(tmp_path):
    store = Store(str(tmp_path / "home"))
    exp_id = _experiment(store, "compacted")
    store.record(exp_id, state="SUCCEEDED")
    store.compact()
    [line] = open(_index(store)).read().splitlines()
    assert json.loads(line)["state"] == "SUCCEEDED"
    open(_index(store), "w").close()
    store.compact()  # an empty index with experiments: left for list() to rebuild, no deadlock on the lock
    assert [e["id"] for e in store.list()] == [exp_id]
