"""Issue 3 figures for the Slurm executor over SSH: a 100-task sweep submitted through one SSH tunnel, and the status
of 100 jobs in one call, side by side with NeMo Run 0.11.1 doing the same sweep.

    eval "$(bash scripts/services/sshd.sh env)"; eval "$(bash scripts/services/slurm.sh env)"
    .venvs/prefect/bin/python bench/bench_slurm.py [--tasks 100] [--repeats 3] [--no-reference] [--out FILE]

Measures, against the project's sshd (127.0.0.1, LogLevel VERBOSE) and 2-node Slurm cluster:

* nemorun: ``with run.Experiment(...) as exp: exp.add(run.Partial(trivial_fn, x=i)) x 100; exp.run(detach=True)``
  with ``run.SlurmExecutor(tunnel=run.SSHTunnel(...), packager=None)``, in a fresh process (empty connection pool)
  per repeat: wall time from entering the ``with`` to ``run()`` returning; SSH connections and remote commands over
  that window, counted from the sshd log (lines "Accepted publickey for", "Starting session: command for",
  "Starting session: subsystem") and from ``nemorun_core.tunnel.ssh.ssh_stats(address)``. Then, not part of the
  submission figure: how long the cluster took until all 100 ended, that all SUCCEEDED with ``trivial_fn``'s result
  ``x + 1``, and that each really ran (a marker file on the cluster side gets one line per run).
  The sshd log is shared with whatever else uses the sshd (tests running at the same time), so only this
  process's connections are counted (by client port: ``bench/_sshd_log.py``); the unfiltered deltas are kept in the
  JSON (``sshd_all_clients``).
* ``executor.status_many(handles)`` for the 100 handles: 5 calls right after submission (jobs queued or running,
  ``squeue``) and 5 after all ended (``sacct``); wall time and remote commands per call, median of 5.
* NeMo Run 0.11.1: ``bench/reference_nemo_run_slurm.py`` run by the reference venv's python (see its docstring for
  its setup: temp HOME/NEMORUN_HOME, strict host keys, ``packager=run.Packager()``), with a timeout.

Every measured run gets a temporary NEMORUN_HOME. At the end whatever is left of this run's jobs is cancelled
(``scancel IDS`` over ssh; ``--scancel-user``: ``scancel -u USER``, which would also cancel the jobs of tests that
share the cluster at that moment).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _sshd_log

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
REFERENCE_PYTHON = REPO / ".bench" / "nemo-run-venv" / "bin" / "python"
SSHD_LOG = "/tmp/nemorun-services/sshd/sshd.log"
ENV_NAMES = ("NEMORUN_TEST_SSH_HOST", "NEMORUN_TEST_SSH_PORT", "NEMORUN_TEST_SSH_USER", "NEMORUN_TEST_SSH_KEY",
             "NEMORUN_TEST_SSH_KNOWN_HOSTS", "NEMORUN_TEST_SLURM_PARTITION", "NEMORUN_TEST_SLURM_ACCOUNT",
             "NEMORUN_TEST_SLURM_JOB_DIR", "NEMORUN_TEST_SLURM_PYTHON")


# ---------------------------------------------------------------------------------------------------------
# the measured child (a fresh process per repeat: nothing pooled, nothing imported beforehand)


def child(args: argparse.Namespace) -> dict:
    import nemorun_core as run
    from nemorun_core.executors.base import JobState
    from nemorun_core.tunnel.ssh import ssh_stats
    from _tasks import trivial_fn

    e = os.environ
    marker = f"{e['NEMORUN_TEST_SLURM_JOB_DIR'].rstrip('/')}/bench-marker-{uuid.uuid4().hex[:8]}.txt"
    tunnel = run.SSHTunnel(host=e["NEMORUN_TEST_SSH_HOST"], port=int(e["NEMORUN_TEST_SSH_PORT"]),
                           user=e["NEMORUN_TEST_SSH_USER"], identity=e["NEMORUN_TEST_SSH_KEY"],
                           known_hosts=e["NEMORUN_TEST_SSH_KNOWN_HOSTS"], job_dir=e["NEMORUN_TEST_SLURM_JOB_DIR"])
    executor = run.SlurmExecutor(tunnel=tunnel, partition=e["NEMORUN_TEST_SLURM_PARTITION"],
                                 account=e["NEMORUN_TEST_SLURM_ACCOUNT"], python=e["NEMORUN_TEST_SLURM_PYTHON"],
                                 time="00:05:00", env_vars={"NEMO_RUN_BENCH_MARKER": marker})
    address = tunnel.address
    tasks = [run.Partial(trivial_fn, x=i) for i in range(args.tasks)]  # Fiddle loaded before timing
    log = args.sshd_log

    server_port = int(e["NEMORUN_TEST_SSH_PORT"])

    def snap() -> tuple[int, object]:
        return _sshd_log.size(log), ssh_stats(address)

    def diff(a: tuple, b: tuple) -> dict:
        # this process's connections are the ones it still holds (pooled) at the end of the window
        counts = _sshd_log.count(log, a[0], b[0], ports=_sshd_log.own_ports(server_port))
        return {"sshd": counts["ours"], "sshd_all_clients": counts["all"],
                "ssh_stats": {"connections_opened": b[1].connections_opened - a[1].connections_opened,
                              "commands_run": b[1].commands_run - a[1].commands_run}}

    s0 = snap()
    t0 = time.perf_counter()
    with run.Experiment("bench-slurm") as exp:
        for i, task in enumerate(tasks):
            exp.add(task, executor=executor, name=f"t{i}")
        t_added = time.perf_counter()
        exp.run(detach=True, quiet=True)
        t_run = time.perf_counter()
    s1 = snap()
    out: dict = {"submit_s": t_run - t0, "add_s": t_added - t0, "run_call_s": t_run - t_added,
                 "submit_ssh": diff(s0, s1)}
    handles = [spec.handle for spec in exp._tasks.values()]  # as tests/integration/test_slurm.py does
    assert all(h is not None for h in handles), "a task was not submitted"

    def status_calls(label: str) -> None:
        calls = []
        for _ in range(5):
            a = snap()
            t = time.perf_counter()
            statuses = executor.status_many(handles)
            wall = time.perf_counter() - t
            b = snap()
            states: dict[str, int] = {}
            for st in statuses.values():
                states[st.state.value] = states.get(st.state.value, 0) + 1
            calls.append({"s": wall, **diff(a, b), "states": states, "answered": len(statuses)})
        out[label] = calls

    status_calls("status_queued")
    t = time.perf_counter()
    final = exp.wait(timeout=args.wait)
    out["cluster_wait_s"] = time.perf_counter() - t
    counts: dict[str, int] = {}
    for st in final.values():
        counts[st.state.value] = counts.get(st.state.value, 0) + 1
    out["final_states"] = counts
    out["all_succeeded"] = all(st.state is JobState.SUCCEEDED for st in final.values()) and len(final) == args.tasks
    status_calls("status_ended")
    if out["all_succeeded"]:
        results = exp.results()
        out["results_ok"] = results == {f"t{i}": i + 1 for i in range(args.tasks)}
    ran = tunnel.run(f"cat {marker} 2>/dev/null | wc -l; rm -f {marker}", check=False).stdout.strip()
    out["jobs_ran_trivial_fn"] = int(ran) if ran.isdigit() else None
    out["job_ids"] = [h.job_id for h in handles]
    return out


# ---------------------------------------------------------------------------------------------------------
# parent


def run_child(args: argparse.Namespace, home: str) -> dict:
    env = {**os.environ, "NEMORUN_HOME": home}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--tasks", str(args.tasks), "--wait",
           str(args.wait), "--sshd-log", args.sshd_log]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.wait + 600,
                         stdin=subprocess.DEVNULL, cwd=str(REPO))
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_reference(args: argparse.Namespace) -> dict:
    if not REFERENCE_PYTHON.exists():
        return {"error": f"{REFERENCE_PYTHON} missing: run `bash bench/setup_reference.sh`"}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    cmd = [str(REFERENCE_PYTHON), str(BENCH / "reference_nemo_run_slurm.py"), "--tasks", str(args.tasks),
           "--timeout", str(args.ref_timeout), "--wait", str(args.wait), "--sshd-log", args.sshd_log, "--out", path]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.ref_timeout + args.wait + 300,
                          stdin=subprocess.DEVNULL, cwd=str(REPO))
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        data = {"error": f"reference exited {proc.returncode}: {proc.stderr[-3000:]}"}
    os.unlink(path)
    return data


def scancel(job_ids: list[str], whole_user: bool) -> str:
    """Cancel what is left of this benchmark's jobs (or every job of the cluster user); return the user's queue."""
    e = os.environ
    user = e["NEMORUN_TEST_SSH_USER"]
    ids = ",".join(j for j in job_ids if j.isdigit())
    what = f"scancel -u {user}" if whole_user else (f"scancel {ids}" if ids else "true")
    argv = ["ssh", "-F", "/dev/null", "-p", e["NEMORUN_TEST_SSH_PORT"], "-i", e["NEMORUN_TEST_SSH_KEY"],
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={e['NEMORUN_TEST_SSH_KNOWN_HOSTS']}",
            f"{e['NEMORUN_TEST_SSH_USER']}@{e['NEMORUN_TEST_SSH_HOST']}",
            f"{what}; sleep 1; squeue -h -u {user} | wc -l"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return out.stdout.strip() or out.stderr.strip()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(nr: list[dict], ref: dict, tasks: int) -> str:
    sub = _median([r["submit_s"] for r in nr])
    conns = sorted({r["submit_ssh"]["sshd"]["connections"] for r in nr})
    cmds = sorted({r["submit_ssh"]["sshd"]["commands"] for r in nr})
    q = [c for r in nr for c in r["status_queued"]]
    d = [c for r in nr for c in r["status_ended"]]
    lines = ["| measure | nemorun | NeMo Run 0.11.1 | goal |", "|---|---|---|---|"]
    ref_ok = "error" not in ref
    ref_sub = ref.get("submit_s")
    speedup = f"**{ref_sub / sub:.1f}x**" if ref_ok and ref_sub else "n/a"
    each = ", ".join(f"{r['submit_s']:.3f}" for r in nr)
    ref_text = f"{ref_sub:.3f} s" if ref_sub else str(ref.get("error", "n/a"))[:80]
    lines.append(f"| {tasks} tasks, `with` to `run(detach=True)` returning (median of {len(nr)}) | {sub:.3f} s "
                 f"({each}) | {ref_text} | >= 5x faster: {speedup} |")
    lines.append(f"| SSH connections opened (sshd log) | {'/'.join(map(str, conns))} | "
                 f"{ref.get('ssh_submit', {}).get('connections', 'n/a')} | 1 |")
    lines.append(f"| remote commands (sshd log) | {'/'.join(map(str, cmds))} | "
                 f"{ref.get('ssh_submit', {}).get('commands', 'n/a')} | |")
    lines.append(f"| SFTP sessions (sshd log) | {'/'.join(str(r['submit_ssh']['sshd']['sftp']) for r in nr)} | "
                 f"{ref.get('ssh_submit', {}).get('sftp', 'n/a')} | |")
    st = nr[0]["submit_ssh"]["ssh_stats"]
    lines.append(f"| `ssh_stats(address)`: connections / commands | {st['connections_opened']} / "
                 f"{st['commands_run']} | | |")
    lines.append(f"| status of {tasks} jobs, one `status_many` call, queued (median of {len(q)}) | "
                 f"{_median([c['s'] for c in q]):.3f} s, {max(c['sshd']['commands'] for c in q)} command(s) | | "
                 f"< 1 s, 1 call |")
    lines.append(f"| ... all ended (sacct) (median of {len(d)}) | {_median([c['s'] for c in d]):.3f} s, "
                 f"{max(c['sshd']['commands'] for c in d)} command(s) | | < 1 s, 1 call |")
    lines.append(f"| cluster: submission to all {tasks} ended (not part of the submission) | "
                 f"{_median([r['cluster_wait_s'] for r in nr]):.1f} s, "
                 f"{'all SUCCEEDED' if all(r['all_succeeded'] for r in nr) else [r['final_states'] for r in nr]} | "
                 f"{ref.get('cluster_wait_s', float('nan')):.1f} s, {ref.get('final_states')} | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process nemorun sweeps")
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for the jobs to end")
    parser.add_argument("--ref-timeout", type=float, default=900, help="seconds allowed to NeMo Run's submission")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--sshd-log", default=SSHD_LOG)
    parser.add_argument("--scancel-user", action="store_true",
                        help="at the end, `scancel -u USER` (every job of the cluster user, not only this run's)")
    parser.add_argument("--out", type=Path, help="also write all figures as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    missing = [n for n in ENV_NAMES if not os.environ.get(n)]
    if missing:
        print(f"{', '.join(missing)} not set: eval \"$(bash scripts/services/sshd.sh env)\"; "
              "eval \"$(bash scripts/services/slurm.sh env)\"", file=sys.stderr)
        return 2
    if args.child:
        print(json.dumps(child(args)))
        return 0

    results: dict = {"tasks": args.tasks, "nemorun": [], "reference": None}
    try:
        for i in range(args.repeats):
            with tempfile.TemporaryDirectory() as home:
                r = run_child(args, home)
            results["nemorun"].append(r)
            print(f"nemorun run {i + 1}: submit {r['submit_s']:.3f} s, sshd {r['submit_ssh']['sshd']}, "
                  f"ssh_stats {r['submit_ssh']['ssh_stats']}, cluster {r['cluster_wait_s']:.1f} s "
                  f"{r['final_states']}, ran {r['jobs_ran_trivial_fn']}", file=sys.stderr, flush=True)
        if not args.no_reference:
            ref = run_reference(args)
            results["reference"] = ref
            print(f"NeMo Run: {json.dumps({k: v for k, v in ref.items() if k != 'job_ids'})}", file=sys.stderr,
                  flush=True)
    finally:
        ours = [j for r in results["nemorun"] for j in r.get("job_ids", [])]
        ours += (results["reference"] or {}).get("job_ids", [])
        results["scancel_left_in_queue"] = scancel(ours, args.scancel_user)
    print(table(results["nemorun"], results["reference"] or {"error": "not run"}, args.tasks))
    print(f"\njobs of the cluster user left in the queue after scancel: {results['scancel_left_in_queue']}"
          f"{'' if args.scancel_user else ' (only this run cancelled: others may use the cluster; --scancel-user)'}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
