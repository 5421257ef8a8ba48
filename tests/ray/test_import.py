"""The Ray API's names and import cost: the spec's module paths name one class each, and none imports Ray."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.ray.conftest import REPO


def test_the_spec_paths_name_the_same_classes_and_import_no_ray_sdk():
    code = textwrap.dedent("""
        import sys
        import nemorun_core as run
        from nemorun_core.run.ray.cluster import RayCluster
        from nemorun_core.run.ray.job import RayJob
        from nemorun_core.run.ray import RayCluster as C2, RayJob as J2
        import nemorun_core.run.ray.cluster as cluster_module
        assert RayCluster is C2 is run.ray.cluster.RayCluster is run.ray.RayCluster is cluster_module.RayCluster
        assert RayJob is J2 is run.ray.job.RayJob
        assert callable(run.run) and run.run.__module__ == "nemorun_core.experiment.launch"
        ex = run.RayExecutor(cluster=RayCluster(num_nodes=1, gpus_per_node=0, memory_per_node="64GB"))
        ex.dryrun  # a RayExecutor made and checked
        heavy = [m for m in ("ray", "requests", "aiohttp", "grpc") if m in sys.modules]
        print(heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", "the Ray API imported Ray's SDK before talking to a cluster"
