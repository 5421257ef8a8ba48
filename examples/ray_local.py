"""A local Ray cluster, a Ray job on it, and an experiment on RayExecutor.

    pip install 'nemorun[ray]'
    python examples/ray_local.py

Starts ``ray start --head`` on this machine (about 20 s; a minute on a busy one), runs a shell command as a Ray job
and two Python tasks as an experiment on the same cluster, then stops the cluster: no Ray process is left.
Run it again while it runs and the job is re-attached, not submitted twice.

Ray binds the machine's routable address for some of its services. On a shared machine where that is not wanted,
run it in a network namespace with only loopback: ``sudo unshare -n bash -c 'ip link set lo up; python
examples/ray_local.py'``.
"""

import nemorun_core as run
from nemorun_core.run.ray import RayCluster, RayJob


def square(x: int) -> int:
    return x * x


def main() -> None:
    cluster = RayCluster(name="example", executor=run.LocalExecutor(), cpus_per_node=2, memory_per_node="2GB")
    cluster.start(dryrun=True)  # prints the exact script start() runs
    address = cluster.start(timeout=600, pre_ray_start_commands=["echo preparing the node"])
    print("Ray dashboard:", address)
    try:
        job = RayJob(name="hello", cluster=cluster)
        job.start(command="echo hello from a Ray job; python -c 'import sys; print(sys.version)'")
        job.logs(follow=True)
        print("job:", job.status())

        with run.Experiment("ray-example") as exp:
            for i in range(2):
                exp.add(run.Partial(square, x=i + 2), name=f"square{i}", executor=run.RayExecutor(cluster=cluster))
            exp.run(max_concurrent=2)
        print("results:", [exp.result(f"square{i}") for i in range(2)])

        with cluster.port_forward(port=18265, target_port=8265) as forward:
            print("dashboard also at", forward.url)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
