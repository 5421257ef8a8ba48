"""NeMo Run 0.11.1 submitting a sweep of trivial tasks to the project's Slurm cluster over SSH, for comparison.

Run with the reference venv (bash bench/setup_reference.sh), after the service env evals:

    eval "$(bash scripts/services/sshd.sh env)"; eval "$(bash scripts/services/slurm.sh env)"
    .bench/nemo-run-venv/bin/python bench/reference_nemo_run_slurm.py [--tasks 100] [--timeout 900] [--out FILE]

(``bench/bench_slurm.py`` runs it this way.) Prints one JSON document:

  submit_s        wall time from entering ``with run.Experiment(...)`` to ``exp.run(detach=True)`` returning
  exit_s          from ``run()`` returning to leaving the ``with`` (NeMo Run prints a status table there, asking
                  the cluster about every job): not part of the submission figure, reported for completeness
  ssh             deltas of the sshd log over the submission (and over the exit): connections ("Accepted
                  publickey"), exec commands ("Starting session: command") and SFTP sessions ("subsystem"),
                  counting only NeMo Run's own connections (``bench/_sshd_log.py``: fabric's socket by client port,
                  rsync's ssh by its source address 127.0.0.3); ``*_all_clients``: unfiltered
  commands        the commands NeMo Run's SSHTunnel.run sent during the submission, by first word (a counting
                  wrapper; behaviour unchanged)
  jobs            the Slurm job ids, and (after the measured part) their final states from ``sacct`` and how many
                  really ran ``bench/_tasks.py:trivial_fn`` (the marker file on the cluster side)

How NeMo Run is set up here (all from its 0.11.1 source):

* ``run.SlurmExecutor(account, partition, time, tunnel=run.SSHTunnel(host, port, user, identity, job_dir),
  packager=run.Packager())``. NeMo Run's SlurmExecutor defaults to ``GitArchivePackager``; the base ``Packager()``
  is its "no code packaging" packager, which matches nemorun's ``packager=None``.
* Host keys. ``SSHTunnel`` connects with fabric 3 (``fabric.Connection``), which calls
  ``set_missing_host_key_policy(AutoAddPolicy())`` and never loads a known_hosts file: out of the box NeMo Run
  accepts ANY host key. To compare like with like (nemorun checks strictly), this script wraps
  ``fabric.Connection.__init__`` to load our known_hosts and set ``RejectPolicy`` (a wrong or unknown key then fails).
  NeMo Run also rsyncs the experiment directory with the OpenSSH client (``rsync --rsh='ssh -i KEY -p PORT'``, strict
  host keys on), which reads known_hosts from the passwd home directory, not ``$HOME``: a small ``ssh`` wrapper first
  on ``PATH`` adds ``-o UserKnownHostsFile=OURS -o StrictHostKeyChecking=yes -o BatchMode=yes`` (and ``-b 127.0.0.3``,
  a source address that tells its connection apart in the shared sshd log). Our known_hosts is
  also copied to the temp ``$HOME/.ssh/known_hosts``.
* Jobs run ``python -m nemo_run.core.runners.fdl_runner ...`` with whatever ``python`` the job's PATH finds: the
  executor's ``env_vars`` put this venv's ``bin/`` first on PATH and ``bench/`` on PYTHONPATH (the cluster user can
  read the repository), so the jobs can really run.
* ``poll_estimated_start_time`` is left at its default (True): each submitted job starts a thread that asks
  ``squeue --start`` once right away; those commands are counted like the rest.

The measured part runs in a child process with a temporary ``HOME`` and ``NEMORUN_HOME`` and a timeout (its whole
process group is killed on expiry).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _sshd_log

BENCH_DIR = Path(__file__).resolve().parent
SSHD_LOG = "/tmp/nemorun-services/sshd/sshd.log"
RSYNC_SOURCE_ADDR = "127.0.0.3"  # the ssh wrapper binds rsync's connection here, so the sshd log tells it apart
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
            "BOOT_FAIL", "DEADLINE"}


# ---------------------------------------------------------------------------------------------------------
# child: the measured part


def child(args: argparse.Namespace) -> None:
    import fabric.connection
    import paramiko

    known_hosts = os.environ["NEMORUN_TEST_SSH_KNOWN_HOSTS"]
    original_init = fabric.connection.Connection.__init__

    def strict_init(self, *a, **k):  # type: ignore[no-untyped-def]
        original_init(self, *a, **k)
        self.client.load_system_host_keys(known_hosts)
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())

    fabric.connection.Connection.__init__ = strict_init

    import nemo_run as run
    from nemo_run.core.tunnel import client as tunnel_client
    from _tasks import trivial_fn

    sent: collections.Counter[str] = collections.Counter()
    original_run = tunnel_client.SSHTunnel.run

    def counting_run(self, command, *a, **k):  # type: ignore[no-untyped-def]
        sent[command.split()[0] if command.split() else "?"] += 1
        return original_run(self, command, *a, **k)

    tunnel_client.SSHTunnel.run = counting_run

    venv_bin = str(Path(sys.executable).parent)
    tunnel = run.SSHTunnel(host=os.environ["NEMORUN_TEST_SSH_HOST"], port=int(os.environ["NEMORUN_TEST_SSH_PORT"]),
                           user=os.environ["NEMORUN_TEST_SSH_USER"], identity=os.environ["NEMORUN_TEST_SSH_KEY"],
                           job_dir=args.job_dir)
    executor = run.SlurmExecutor(
        account=os.environ["NEMORUN_TEST_SLURM_ACCOUNT"], partition=os.environ["NEMORUN_TEST_SLURM_PARTITION"],
        time="00:05:00", tunnel=tunnel, packager=run.Packager(),
        env_vars={"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(BENCH_DIR),
                  "NEMO_RUN_BENCH_MARKER": args.marker, "NEMORUN_HOME": f"{args.job_dir}/.nemo_run_home"},
    )
    tasks = [run.Partial(trivial_fn, x=i) for i in range(args.tasks)]  # Fiddle loaded before timing, as for nemorun

    log = args.sshd_log
    server_port = int(os.environ["NEMORUN_TEST_SSH_PORT"])
    c0 = _sshd_log.size(log)
    t0 = time.perf_counter()
    with run.Experiment("bench-slurm-ref", executor=executor) as exp:
        for i, task in enumerate(tasks):
            exp.add(task, name=f"task-{i}")
        t_added = time.perf_counter()
        exp.run(detach=True)
        t_run = time.perf_counter()
        c1 = _sshd_log.size(log)
        ports = _sshd_log.own_ports(server_port)  # fabric's connection, still open
        sent_submit = dict(sent)
    t_exit = time.perf_counter()
    c2 = _sshd_log.size(log)
    ports |= _sshd_log.own_ports(server_port)
    submit_counts = _sshd_log.count(log, c0, c1, ports=ports, addrs={RSYNC_SOURCE_ADDR})
    exit_counts = _sshd_log.count(log, c1, c2, ports=ports, addrs={RSYNC_SOURCE_ADDR})
    job_ids = []
    for job in exp.jobs:
        handle = getattr(job, "handle", "") or ""
        _, _, path = handle.partition("://")
        parts = path.split("/")
        job_ids.append(parts[1] if len(parts) > 1 else "")
    Path(args.child_out).write_text(json.dumps({
        "submit_s": t_run - t0,
        "add_s": t_added - t0,
        "run_call_s": t_run - t_added,
        "exit_s": t_exit - t_run,
        "ssh_submit": submit_counts["ours"],
        "ssh_exit": exit_counts["ours"],
        "ssh_submit_all_clients": submit_counts["all"],
        "ssh_exit_all_clients": exit_counts["all"],
        "commands_submit": sent_submit,
        "commands_exit": dict(sent - collections.Counter(sent_submit)),
        "job_ids": job_ids,
    }))
    os._exit(0)  # the start-time poller threads are daemons; leave without waiting on fabric's cleanup


# ---------------------------------------------------------------------------------------------------------
# parent


def ssh_cmd(command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    e = os.environ
    argv = ["ssh", "-F", "/dev/null", "-p", e["NEMORUN_TEST_SSH_PORT"], "-i", e["NEMORUN_TEST_SSH_KEY"],
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={e['NEMORUN_TEST_SSH_KNOWN_HOSTS']}",
            f"{e['NEMORUN_TEST_SSH_USER']}@{e['NEMORUN_TEST_SSH_HOST']}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def wait_for_jobs(job_ids: list[str], timeout: float) -> tuple[dict[str, int], float]:
    """Final sacct states of the jobs (counts by state) and how long after the call they were all terminal."""
    ids = ",".join(j for j in job_ids if j.isdigit())
    t0 = time.perf_counter()
    states: dict[str, str] = {}
    while ids:
        out = ssh_cmd(f"sacct -X -n -P -j {ids} -o JobID,State").stdout
        states = {}
        for line in out.splitlines():
            if "|" in line:
                job, state = line.split("|", 1)
                states[job] = state.split()[0] if state else "?"
        if len(states) == len(ids.split(",")) and all(s in TERMINAL for s in states.values()):
            break
        if time.perf_counter() - t0 > timeout:
            break
        time.sleep(2)
    return dict(collections.Counter(states.values())), time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed to the submitting child")
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for the jobs to end (0: do not)")
    parser.add_argument("--sshd-log", default=SSHD_LOG)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temp HOME")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--child-out")
    parser.add_argument("--job-dir")
    parser.add_argument("--marker")
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    e = os.environ
    missing = [n for n in ("NEMORUN_TEST_SSH_HOST", "NEMORUN_TEST_SSH_PORT", "NEMORUN_TEST_SSH_USER",
                           "NEMORUN_TEST_SSH_KEY", "NEMORUN_TEST_SSH_KNOWN_HOSTS", "NEMORUN_TEST_SLURM_ACCOUNT",
                           "NEMORUN_TEST_SLURM_PARTITION", "NEMORUN_TEST_SLURM_JOB_DIR") if not e.get(n)]
    if missing:
        print(f"{', '.join(missing)} not set: eval \"$(bash scripts/services/sshd.sh env)\"; "
              "eval \"$(bash scripts/services/slurm.sh env)\"", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="nemo-run-slurm-bench-"))
    home = workdir / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(e["NEMORUN_TEST_SSH_KNOWN_HOSTS"], home / ".ssh" / "known_hosts")
    wrappers = workdir / "bin"
    wrappers.mkdir()
    (wrappers / "ssh").write_text(
        "#!/bin/sh\n"
        f"exec /usr/bin/ssh -o UserKnownHostsFile={shlex.quote(e['NEMORUN_TEST_SSH_KNOWN_HOSTS'])} "
        f"-o StrictHostKeyChecking=yes -o BatchMode=yes -b {RSYNC_SOURCE_ADDR} \"$@\"\n")
    (wrappers / "ssh").chmod(0o755)
    run_id = uuid.uuid4().hex[:8]
    job_dir = f"{e['NEMORUN_TEST_SLURM_JOB_DIR'].rstrip('/')}/nemo-run-reference-{run_id}"
    marker = f"{job_dir}/marker.txt"
    env = dict(e)
    env.update(
        HOME=str(home), NEMORUN_HOME=str(workdir / "nemorun_home"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH_DIR), e.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(wrappers), str(Path(sys.executable).parent), e.get("PATH", "")]),
        NO_COLOR="1", TERM="dumb",
    )
    result: dict = {"tasks": args.tasks, "job_dir": job_dir}
    out = workdir / "child.json"
    log = workdir / "child.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--tasks", str(args.tasks), "--child-out",
           str(out), "--job-dir", job_dir, "--marker", marker, "--sshd-log", args.sshd_log]
    rc = 0
    t0 = time.perf_counter()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            child_rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            child_rc = None
    result["child_wall_s"] = time.perf_counter() - t0
    if child_rc is None:
        result["error"] = f"timed out after {args.timeout} s"
        rc = 1
    elif child_rc != 0 or not out.exists():
        result["error"] = f"child exited {child_rc}: {log.read_text(errors='replace')[-3000:]}"
        rc = 1
    else:
        result.update(json.loads(out.read_text()))
        if args.wait > 0:
            counts, waited = wait_for_jobs(result["job_ids"], args.wait)
            result["final_states"] = counts
            result["cluster_wait_s"] = waited
            ran = ssh_cmd(f"cat {shlex.quote(marker)} 2>/dev/null | wc -l").stdout.strip()
            result["jobs_ran_trivial_fn"] = int(ran) if ran.isdigit() else None
    if rc or args.keep:
        result["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
