"""DockerExecutor rendering and validation: pure, no engine, no Docker SDK."""

from __future__ import annotations

import json
import os
import sys

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.executors.base import Job, JobState
from nemorun_core.executors.docker import spec as S
from nemorun_core.executors.docker import states

IMAGE = "nvidia/pytorch:24.05-py3"
SRC = os.path.dirname(os.path.abspath(run.__file__))
# The task's import directory: one that exists here, since only those are bind-mounted (dryrun reads which exist,
# as submission does); a missing one is left out of the spec.
PROJECT = os.path.dirname(os.path.abspath(__file__))
MISSING = "/nonexistent/nemorun-project"


def job(**overrides) -> Job:
    payload = {"version": 1, "name": "train", "kind": "partial", "task": {},
               "sys_path": [PROJECT, MISSING, "/usr/lib/python3/dist-packages", "/"]}
    fields = dict(name="train", key="exp_1/train/0", command=["python", "-m", "nemorun_core.runner", "/jobs/train"],
                  job_dir="/jobs/train", files={"task.json": json.dumps(payload)})
    fields.update(overrides)
    return Job(**fields)


def containers(ex, j=None) -> list[dict]:
    return json.loads(ex.dryrun(j or job()).text)["containers"]


def test_spec_example_renders_the_exact_container_spec():
    ex = run.DockerExecutor(container_image=IMAGE, num_gpus=4, volumes=["/data:/data", "/models:/models:ro"],
                            ports=["8080:8080"], env_vars={"NCCL_DEBUG": "INFO", "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    request = ex.dryrun(job())
    assert request.backend == "docker"
    (one,) = json.loads(request.text)["containers"]
    assert request.text == json.dumps({"containers": [one]}, sort_keys=True, indent=2) + "\n"
    assert one == {
        "command": ["python3", "-m", "nemorun_core.runner", "/jobs/train"],
        "device_requests": [{"capabilities": [["gpu"]], "count": 4}],
        "environment": {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "NCCL_DEBUG": "INFO", "NEMORUN_JOB_DIR": "/jobs/train",
                        "NEMORUN_JOB_KEY": "exp_1/train/0", "PYTHONPATH": "/opt/nemorun/lib"},
        "image": IMAGE,
        "labels": {"nemorun.containers": "1", "nemorun.job": "train", "nemorun.job_dir": "/jobs/train",
                   "nemorun.key": "exp_1/train/0", "nemorun.rank": "0"},
        "mounts": [
            {"read_only": False, "source": "/jobs/train", "target": "/jobs/train", "type": "bind"},
            {"read_only": True, "source": SRC, "target": "/opt/nemorun/lib/nemorun_core", "type": "bind"},
            # the task's import path, read-only; "/", the host's dist-packages and a missing directory never are
            {"read_only": True, "source": PROJECT, "target": PROJECT, "type": "bind"},
            {"read_only": False, "source": "/data", "target": "/data", "type": "bind"},
            {"read_only": True, "source": "/models", "target": "/models", "type": "bind"},
        ],
        "name": S.container_name("exp_1/train/0", 0),
        "network_mode": "host",
        "ports": {"8080/tcp": 8080},
        "working_dir": "/jobs/train",
    }


def test_dryrun_is_pure_and_imports_no_sdk(monkeypatch):
    monkeypatch.delitem(sys.modules, "docker", raising=False)
    ex = run.DockerExecutor(container_image=IMAGE)
    assert ex.dryrun(job()).text == ex.dryrun(job()).text
    assert "docker" not in sys.modules


@pytest.mark.parametrize("num_gpus,expected", [
    (None, None), (0, None), (2, [{"capabilities": [["gpu"]], "count": 2}]),
    ("all", [{"capabilities": [["gpu"]], "count": -1}]),
])
def test_gpu_device_requests(num_gpus, expected):
    (one,) = containers(run.DockerExecutor(container_image=IMAGE, num_gpus=num_gpus))
    assert one.get("device_requests") == expected


def test_gpu_request_becomes_an_sdk_device_request():
    from docker.types import DeviceRequest

    from nemorun_core.executors.docker.spec import to_sdk_kwargs

    (one,) = containers(run.DockerExecutor(container_image=IMAGE, num_gpus=4, ulimits={"nofile": (1024, 2048)}))
    kwargs = to_sdk_kwargs(one)
    assert kwargs["device_requests"] == [DeviceRequest(count=4, capabilities=[["gpu"]])]
    assert kwargs["mounts"][0]["Source"] == "/jobs/train" and kwargs["mounts"][1]["ReadOnly"] is True
    assert kwargs["ulimits"][0]["Name"] == "nofile" and kwargs["ulimits"][0]["Hard"] == 2048


def test_secrets_are_masked_in_dryrun_and_never_in_the_container_spec():
    """Issue 10 item 6: a container's environment is visible to `docker inspect`, so secrets (by name, by value, or
    marked run.Secret) are not in it at all, not even in the spec submission creates; they travel as files."""
    from nemorun_core.executors.docker import secret_files

    ex = run.DockerExecutor(container_image=IMAGE, env_vars={"WANDB_API_KEY": "abc123", "HF_HOME": "/hf",
                                                             "X": "ghp_" + "a" * 30,
                                                             "MY_VALUE": run.Secret("neutral-value")})
    j = job(env={"DB_PASSWORD": "hunter2"})
    text = ex.dryrun(j).text
    assert "abc123" not in text and "hunter2" not in text and "ghp_" not in text and "neutral-value" not in text
    shown = json.loads(text)
    env = shown["containers"][0]["environment"]
    assert env["HF_HOME"] == "/hf"
    assert shown["secret_files"]["variables"] == {"DB_PASSWORD": "<secret>", "MY_VALUE": "<secret>",
                                                  "WANDB_API_KEY": "<secret>", "X": "<secret>"}
    assert not {"WANDB_API_KEY", "DB_PASSWORD", "X", "MY_VALUE"} & set(env)
    assert ex.dryrun(j).meta["env"] == sorted([*env, "DB_PASSWORD", "MY_VALUE", "WANDB_API_KEY", "X"])
    (real,) = ex.specs(j, ex.prepare(j, dry=True))
    assert "abc123" not in json.dumps(real) and "hunter2" not in json.dumps(real)
    assert "neutral-value" not in json.dumps(real)
    assert real["command"] == secret_files.wrap(["python3", "-m", "nemorun_core.runner", "/jobs/train"])
    assert S.secret_env(ex, j) == {"WANDB_API_KEY": "abc123", "DB_PASSWORD": "hunter2", "X": "ghp_" + "a" * 30,
                                   "MY_VALUE": "neutral-value"}


def test_user_pythonpath_comes_before_nemorun():
    (one,) = containers(run.DockerExecutor(container_image=IMAGE, env_vars={"PYTHONPATH": "/code"}))
    assert one["environment"]["PYTHONPATH"] == "/code:/opt/nemorun/lib"


def test_several_containers_get_ranks():
    specs = containers(run.DockerExecutor(container_image=IMAGE, nodes=2, ntasks_per_node=2))
    assert [s["labels"]["nemorun.rank"] for s in specs] == ["0", "1", "2", "3"]
    assert [s["environment"]["RANK"] for s in specs] == ["0", "1", "2", "3"]
    assert [s["environment"]["LOCAL_RANK"] for s in specs] == ["0", "1", "0", "1"]
    assert {s["environment"]["WORLD_SIZE"] for s in specs} == {"4"}
    assert len({s["name"] for s in specs}) == 4
    assert {s["environment"]["MASTER_PORT"] for s in specs} == {str(S.master_port("exp_1/train/0"))}


def test_torchrun_runs_one_container_per_node():
    specs = containers(run.DockerExecutor(container_image=IMAGE, nodes=2, ntasks_per_node=4, launcher="torchrun"))
    assert len(specs) == 2
    assert specs[0]["command"][:3] == ["python3", "-m", "torch.distributed.run"]
    assert "--nproc-per-node=4" in specs[0]["command"] and "--node-rank=1" in specs[1]["command"]
    assert specs[1]["environment"]["NODE_RANK"] == "1" and "RANK" not in specs[1]["environment"]


def test_packaged_code_is_mounted_at_workspace_code():
    ex = run.DockerExecutor(container_image=IMAGE, packager=run.PatternPackager(include=["*.py"]))
    (one,) = containers(ex)
    targets = [m["target"] for m in one["mounts"]]
    assert "/workspace/code" in targets and PROJECT not in targets
    assert one["working_dir"] == "/workspace/code"


def test_image_packager_runs_the_built_image():
    ex = run.DockerExecutor(container_image=IMAGE, packager=run.DockerImagePackager(IMAGE, workdir="/app"))
    (one,) = containers(ex)
    assert one["image"].startswith("nemorun-code:")
    assert one["working_dir"] == "/app"
    assert [m["target"] for m in one["mounts"]] == ["/jobs/train", "/opt/nemorun/lib/nemorun_core"]


def test_extra_args_pass_through():
    (one,) = containers(run.DockerExecutor(container_image=IMAGE, extra_args={"mem_limit": "4g", "cpu_quota": 5000},
                                           shm_size="16g", ipc_mode="host", user="1000:1000", runtime="nvidia"))
    assert (one["mem_limit"], one["cpu_quota"], one["shm_size"], one["ipc_mode"], one["user"], one["runtime"]) == (
        "4g", 5000, "16g", "host", "1000:1000", "nvidia")


@pytest.mark.parametrize("ports,expected", [
    ([8080], {"8080/tcp": 8080}), (["8080:8080"], {"8080/tcp": 8080}), ([(8080, 8080)], {"8080/tcp": 8080}),
    ({8080: 8080}, {"8080/tcp": 8080}), (["53/udp"], {"53/udp": 53}), (None, {}),
])
def test_port_forms(ports, expected):
    assert S.parse_ports(ports, "host") == expected


@pytest.mark.parametrize("field,kwargs,fragment", [
    ("container_image", {"container_image": "Bad Image"}, "not a valid image reference"),
    ("container_image", {"container_image": "UPPER/case:1"}, "not a valid image reference"),
    ("container_image", {"container_image": ""}, "image reference"),
    ("volumes[0]", {"volumes": ["data:/data"]}, "not absolute"),
    ("volumes[0]", {"volumes": ["/data"]}, "must be '/host/path:/container/path'"),
    ("volumes[1]", {"volumes": ["/a:/a", "/data:/data:rx"]}, "mode 'rx'"),
    ("volumes[0]", {"volumes": ["/data:data"]}, "must be absolute"),
    ("ports", {"ports": [70000]}, "out of range"),
    ("ports", {"ports": ["http"]}, "not a port mapping"),
    ("ports", {"ports": [8080.5]}, "out of range"),
    ("ports", {"ports": ["9090:8080"]}, "cannot be published as 9090"),
    ("ports", {"ports": [8080], "network": "none"}, "no port can be"),
    ("env_vars", {"env_vars": {"N": 4}}, "must be a string"),
    ("env_vars", {"env_vars": {"1BAD": "x"}}, "not a valid environment variable name"),
    ("extra_args", {"extra_args": {"mem_limt": "1g"}}, "did you mean 'mem_limit'"),
    ("extra_args", {"extra_args": {"network_mode": "bridge"}}, "use network instead"),
    ("extra_args", {"extra_args": {"environment": {}}}, "use env_vars instead"),
    ("network", {"network": "bridge"}, "bridge"),
    ("network", {"network": "my-net"}, "Use network='host' or 'none'"),
    ("num_gpus", {"num_gpus": -2}, "None, an int >= 0 or 'all'"),
    ("num_gpus", {"num_gpus": "two"}, "None, an int >= 0 or 'all'"),
    ("ulimits", {"ulimits": {"nofiles": 10}}, "unknown limit 'nofiles'"),
    ("ulimits", {"ulimits": {"nofile": (10, 5)}}, "above its hard limit"),
    ("shm_size", {"shm_size": "lots"}, "size such as"),
    ("ipc_mode", {"ipc_mode": "shared"}, "must be one of"),
    ("cleanup", {"cleanup": "sometimes"}, "on_success"),
    ("ntasks_per_node", {"ntasks_per_node": 0}, "int >= 1"),
    ("user", {"user": "me you"}, "uid:gid"),
])
def test_validation_errors_name_the_field(field, kwargs, fragment):
    kwargs = {"container_image": IMAGE, **kwargs}
    with pytest.raises(ConfigError) as info:
        run.DockerExecutor(**kwargs)
    assert info.value.path == f"DockerExecutor.{field}"
    assert fragment in str(info.value)


@pytest.mark.parametrize("field,kwargs", [
    ("container_image", {"container_image": "busybox\n"}),
    ("user", {"user": "root\n"}),
    ("shm_size", {"shm_size": "1g\n"}),
    ("runtime", {"runtime": "nvidia\n"}),
    ("ipc_mode", {"ipc_mode": "container:abc\n"}),
])
def test_a_trailing_newline_is_refused_in_every_checked_field(field, kwargs):
    # `$` matches before a final newline: the checks must match the whole value.
    with pytest.raises(ConfigError) as info:
        run.DockerExecutor(**{"container_image": IMAGE, **kwargs})
    assert info.value.path == f"DockerExecutor.{field}"


def test_job_env_is_checked_too():
    ex = run.DockerExecutor(container_image=IMAGE)
    with pytest.raises(ConfigError, match="value of N must be a string"):
        ex.dryrun(job(env={"N": 3}))


def test_volume_over_a_nemorun_mount_is_refused():
    ex = run.DockerExecutor(container_image=IMAGE, volumes=["/somewhere:/jobs/train"])
    with pytest.raises(ConfigError, match="which nemorun mounts itself"):
        ex.dryrun(job())


@pytest.mark.parametrize("image", ["busybox", "nvidia/pytorch:24.05-py3", "localhost:5000/a/b:c",
                                   "registry.example.com/x_y/z-w:1.0", "a@sha256:" + "0" * 64, "nemorun-code:0123abcd"])
def test_valid_image_references(image):
    assert S.check_image(image) == image


def test_container_names_are_valid_and_stable():
    name = S.container_name("exp a'; echo/foo bar/0", 3)
    assert name == S.container_name("exp a'; echo/foo bar/0", 3)
    assert name.endswith("-3") and all(c.isalnum() or c in "_.-" for c in name)


# -- states ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("native,code,kw,state,message", [
    ("running", None, {}, JobState.RUNNING, ""),
    ("created", None, {}, JobState.PENDING, ""),
    ("exited", 0, {}, JobState.SUCCEEDED, ""),
    ("exited", 1, {"runner_error": "RuntimeError: boom"}, JobState.FAILED, "RuntimeError: boom"),
    ("exited", 3, {}, JobState.FAILED, "exited with status 3"),
    ("exited", 137, {"oom_killed": True}, JobState.FAILED, "out of memory (OOM killed)"),
    ("exited", 143, {"cancelled": True}, JobState.CANCELLED, "cancelled"),
    ("dead", None, {}, JobState.FAILED, "dead"),
    ("removing", None, {}, JobState.UNKNOWN, ""),
])
def test_container_states(native, code, kw, state, message):
    st = states.container_status(native, code, **kw)
    assert st.state is state and message in st.message and st.native == native


def test_exit_code_from_list_entry():
    assert states.exit_code_of({"State": "exited", "Status": "Exited (137) 2 seconds ago"}) == 137
    assert states.exit_code_of({"State": {"Status": "exited", "ExitCode": 3}}) == 3
    assert states.exit_code_of({"State": "running", "Status": "Up 2 seconds"}) is None


def test_several_containers_are_the_worst_of_their_parts():
    ok, running = states.container_status("exited", 0), states.container_status("running", None)
    bad = states.container_status("exited", 2)
    assert states.combine([ok, running]).state is JobState.RUNNING
    failed = states.combine([ok, bad, running])
    assert failed.state is JobState.FAILED and "rank 1" in failed.message
    assert states.combine([ok, ok]).state is JobState.SUCCEEDED
    assert states.combine([]).state is JobState.UNKNOWN


def test_handle_and_executor_import_lazily():
    import subprocess

    code = "import sys, nemorun_core as run; run.DockerExecutor; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- issue 10: secrets as files, engine outages, engine restarts ------------------------------------------------------
def test_secret_files_archive_is_private_to_the_container_user_and_byte_exact():
    import io
    import tarfile

    from nemorun_core.executors.docker import secret_files

    values = {"API_TOKEN": "line1\nline2\n", "PEM": "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"}
    for in_volume, path, prefix in ((False, "/", ".nemorun/secrets"), (True, "/.nemorun", "secrets")):
        at, data = secret_files.archive(values, 1000, 1001, in_volume=in_volume)
        assert at == path
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = {m.name: m for m in tar.getmembers()}
            assert members[prefix].isdir() and members[prefix].mode == 0o700
            for name, value in values.items():
                m = members[f"{prefix}/{name}"]
                assert (m.mode, m.uid, m.gid) == (0o600, 1000, 1001)
                assert tar.extractfile(m).read() == value.encode()


def test_a_read_only_root_gets_a_volume_for_the_secret_files_and_no_secret_keeps_the_command():
    from nemorun_core.executors.docker import secret_files

    ex = run.DockerExecutor(container_image=IMAGE, env_vars={"HF_TOKEN": "x" * 8}, extra_args={"read_only": True})
    (one,) = containers(ex)
    assert {"type": "volume", "source": None, "target": "/.nemorun", "read_only": False} in one["mounts"]
    assert one["command"][:3] == ["/bin/sh", "-c", secret_files.READER]
    (plain,) = containers(run.DockerExecutor(container_image=IMAGE, env_vars={"HF_HOME": "/hf"}))
    assert plain["command"] == ["python3", "-m", "nemorun_core.runner", "/jobs/train"]
    assert "secret_files" not in json.loads(run.DockerExecutor(container_image=IMAGE).dryrun(job()).text)


def test_the_reader_script_holds_no_value_and_reads_files_as_data():
    from nemorun_core.executors.docker import secret_files

    ex = run.DockerExecutor(container_image=IMAGE, env_vars={"DB_PASSWORD": "abc'\n$(touch /tmp/pwned)\n"})
    (one,) = containers(ex)
    assert "pwned" not in json.dumps(one) and "abc" not in one["command"][2]
    assert one["command"][2] == secret_files.READER  # a constant: nothing of the job is spliced into it


@pytest.mark.parametrize("code,finished_delta,expected", [
    (143, -5.0, True),  # stopped while the engine shut down
    (137, -600.0, True),
    (143, 10.0, True),  # stopped by a restarted engine restoring its containers
    (139, 10.0, False),  # a segfault after the engine started is the task's own
    (143, 120.0, False),  # long after the engine started: someone's docker stop, not the engine
    (1, -5.0, False),  # a plain failure is never the engine's
])
def test_engine_stopped_is_told_from_the_exit_and_the_engine_start(code, finished_delta, expected):
    from datetime import datetime, timezone

    start = 1_800_000_000.0
    finished = datetime.fromtimestamp(start + finished_delta, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    assert states.stopped_by_engine(code, finished, start) is expected
    assert states.stopped_by_engine(code, finished, None) is False  # unknown engine start: never guessed
    st = states.container_status("exited", code, stopped_by_engine=expected)
    assert st.state is JobState.FAILED
    assert ("stopped by the Docker engine" in st.message) is expected


def test_unreachable_engine_errors_are_recognised_and_others_are_not():
    import requests

    from docker.errors import DockerException, NotFound

    from nemorun_core.errors import BackendUnavailableError
    from nemorun_core.executors.docker import engine

    cut = requests.exceptions.ConnectionError("('Connection aborted.', FileNotFoundError(2, 'No such file'))")
    assert engine.is_unreachable(cut)
    try:
        raise DockerException("Error while fetching server API version") from cut
    except DockerException as exc:
        assert engine.is_unreachable(exc)
    assert not engine.is_unreachable(NotFound("no such container"))
    err = engine.unavailable("unix:///tmp/x.sock", "reading the log of job 'k'", cut)
    assert isinstance(err, BackendUnavailableError)
    assert "unix:///tmp/x.sock" in str(err) and "may still be running" in str(err) and "re-attach" in str(err)


# -- reading logs by position (executors/docker/logfile.py) -----------------------------------------------------------
def _json_log(path, *pieces):
    with open(path, "a") as f:
        for piece in pieces:
            f.write(json.dumps({"log": piece, "stream": "stdout", "time": "2026-12-01T00:00:00Z"}) + "\n")


def test_log_cursor_holds_back_a_partial_line_and_resumes_where_it_stopped(tmp_path):
    from nemorun_core.executors.docker import logfile

    reader = logfile.EngineLogs()
    cid = "a" * 64
    (tmp_path / cid).mkdir()
    path = tmp_path / cid / f"{cid}-json.log"
    _json_log(path, "one\n", "two\n", "thr")
    assert reader.engine_lines(str(tmp_path), cid, 0, final=False) == ["one", "two"]
    assert reader.engine_lines(str(tmp_path), cid, 0, final=True, capped=False) == ["one", "two", "thr"]
    with open(path, "a") as f:
        f.write('{"log":"half-written')  # the engine is writing this entry: not read yet
    assert reader.engine_lines(str(tmp_path), cid, 2, final=False) == []
    with open(path, "a") as f:
        f.write('","stream":"stdout","time":"t"}\n')
    _json_log(path, "ee\r\n", "last")
    assert reader.engine_lines(str(tmp_path), cid, 2, final=False) == ["thrhalf-writtenee\r"]
    cursor = reader._cursor(str(path), 3)
    assert (cursor.line, cursor.pos, cursor.carry) == (3, os.path.getsize(path), b"last"), "resumes at the end"
    fresh = logfile.EngineLogs()  # another process: counts from the start
    assert fresh.engine_lines(str(tmp_path), cid, 1, final=True) == ["two", "thrhalf-writtenee\r", "last"]


def test_log_reader_caps_a_round_and_cuts_an_endless_line_once():
    from nemorun_core.executors.docker import logfile

    pieces = [(b"x" * 10, 10), (b"yy\nz\n", 15), (b"w\n", 17)]
    lines, cursor = logfile.advance(iter(pieces), logfile.Cursor(), 0, final=True, max_lines=None, max_bytes=8)
    assert lines == ["xxxxxxxx [line cut by nemorun: longer than 8 bytes]"] and cursor.skip and cursor.line == 1
    rest, end = logfile.advance(iter(pieces[1:]), cursor, 1, final=True, max_lines=None, max_bytes=8)
    assert rest == ["z", "w"] and end.line == 3, "the rest of the cut line is not a line of its own"
    capped, at = logfile.advance(iter([(b"a\n", 2), (b"b\n", 4), (b"c\n", 6)]), logfile.Cursor(), 0, final=True,
                                 max_lines=2, max_bytes=None)
    assert capped == ["a", "b"] and at == logfile.Cursor(2, 4)


def test_log_reader_refuses_what_is_not_a_container_id_or_an_engine_log(tmp_path):
    from nemorun_core.executors.docker import logfile

    reader = logfile.EngineLogs()
    assert reader.engine_lines(str(tmp_path), "../../etc/passwd", 0, final=True) is None
    assert reader.engine_lines(None, "a" * 64, 0, final=True) is None
    assert reader.engine_lines(str(tmp_path), "b" * 64, 0, final=True) is None, "no file: ask the engine"
    cid = "c" * 64
    (tmp_path / cid).mkdir()
    (tmp_path / cid / f"{cid}-json.log").write_text("not json\n")
    assert reader.engine_lines(str(tmp_path), cid, 0, final=True) is None
    saved = tmp_path / "log.out"
    saved.write_bytes(b"a\rb\nc")
    assert reader.saved_lines(str(saved), 0) == ["a\rb", "c"], "split at newlines only, as while running"
    assert reader.saved_lines(str(tmp_path / "missing"), 0) == []


def test_log_reader_is_not_part_of_the_executors_config():
    import copy
    import pickle

    ex = run.DockerExecutor(container_image="busybox")
    reader = ex._engine_logs()
    reader.pin_root("unix:///x", "/somewhere")
    assert copy.deepcopy(ex)._engine_logs() is not reader and copy.deepcopy(ex) == ex
    assert pickle.loads(pickle.dumps(ex)) == ex
    assert "somewhere" not in repr(ex)
