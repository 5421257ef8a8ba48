"""A local Ray cluster started by RayCluster(executor=run.LocalExecutor()), for real.

Each start costs 20-45 s, so one test covers the cluster's life: it runs in a loopback-only network namespace
(tests/ray/conftest.py), as Ray must on this kind of machine, and proves that nothing of the cluster is left.
"""

from __future__ import annotations

import json

import pytest

from tests.ray.conftest import in_loopback_namespace

pytestmark = pytest.mark.ray

BODY = r'''
import json, os, time, urllib.request
import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.run.ray import ClusterNotReadyError, ClusterState, RayCluster, RayJob
from nemorun_core.ray.local import _marked

def triple(x: int) -> int:
    return 3 * x

out = {}
home = os.environ["NEMORUN_HOME"]
cluster = RayCluster(name="life", executor=run.LocalExecutor(), cpus_per_node=2, memory_per_node="2GB")
state_dir = cluster.backend().dir
t = time.monotonic()
address = cluster.start(timeout=300, pre_ray_start_commands=[f"echo ran > {home}/pre.txt"])
out["start_s"] = time.monotonic() - t
out["pre"] = open(f"{home}/pre.txt").read()
out["status"] = cluster.status().state.value
out["again"] = cluster.start(timeout=300) == address

# the spec's second shape: an experiment task on RayExecutor(cluster=...)
out["result"] = run.run(run.Partial(triple, x=14), executor=run.RayExecutor(cluster=cluster))

job = RayJob(name="hello", cluster=cluster)
with open(f"{home}/probe.py", "w") as f:
    f.write("import ray\nray.init()\nr = ray.cluster_resources()\nprint('resources', int(r['memory']), int(r['CPU']))\n")
job.start(command=f"echo hello from $NEMORUN_JOB_KEY; python {home}/probe.py 2>/dev/null")
lines = []
job.logs(follow=True, emit=lines.append)
out["job_lines"] = lines

with cluster.port_forward(port=18265, target_port=8265) as forward:
    with urllib.request.urlopen(f"{forward.url}/api/version", timeout=10) as r:
        out["forwarded"] = json.load(r)["ray_version"]
try:
    cluster.port_forward(port=int(address.rsplit(":", 1)[1]), target_port=8265)
except ConfigError as exc:
    out["port_in_use"] = exc.path

cluster.stop()
out["left_after_stop"] = sorted(_marked(state_dir))
out["status_after_stop"] = cluster.status().state.value
cluster.stop()

t = time.monotonic()
try:
    cluster.start(timeout=1)
except ClusterNotReadyError as exc:
    out["not_ready"] = str(exc)
out["teardown_s"] = time.monotonic() - t
out["left_after_timeout"] = sorted(_marked(state_dir))
print("RESULT " + json.dumps(out))
'''


def test_a_local_cluster_starts_runs_jobs_forwards_and_stops_leaving_nothing(tmp_path):
    done = in_loopback_namespace(BODY, str(tmp_path / "home"))
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, (done.stdout[-3000:], done.stderr[-5000:])
    out = json.loads(results[-1][len("RESULT "):])
    assert out["pre"] == "ran\n", "pre_ray_start_commands ran before ray start"
    assert out["status"] == "RUNNING" and out["again"], "a second start re-attaches"
    assert out["result"] == 42
    # the sizes reached `ray start`: the cluster offers what RayCluster said
    assert out["job_lines"] == ["hello from ray-life/hello/0", f"resources {2 * 10**9} 2"]
    assert out["forwarded"] == "2.60.0"
    assert out["port_in_use"] == "RayCluster.port_forward.port"
    assert out["left_after_stop"] == [] and out["status_after_stop"] == "NOT_STARTED"
    message = out["not_ready"]
    assert "the head node of Ray cluster 'life' did not become ready in 1 s" in message
    assert "head.log" in message and "it was stopped" in message
    assert out["left_after_timeout"] == []
