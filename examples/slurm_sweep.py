"""A learning-rate sweep on a Slurm cluster reached over SSH, with the code shipped by git archive.

    python examples/slurm_sweep.py --dryrun                      # print the sbatch scripts; no cluster needed
    python examples/slurm_sweep.py --host login.cluster.org --user me --job-dir /scratch/me/runs \\
        --partition gpu --account my-account [--identity ~/.ssh/id_ed25519] [--port 22]

The sweep's training tasks are submitted at once; the evaluation waits for them in Slurm's own queue
(``--dependency=afterok``), so the experiment can be left detached and followed later from anywhere:

    nemorun experiment status <id> --watch
"""

from __future__ import annotations

import argparse

import nemorun_core as run


def train(learning_rate: float, steps: int = 100) -> dict:
    loss = 1.0
    for _ in range(steps):
        loss *= 1 - learning_rate
    run.log_metrics({"loss": loss})
    return {"learning_rate": learning_rate, "loss": loss}


def evaluate() -> str:
    return "evaluated"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dryrun", action="store_true", help="print what would be submitted, submit nothing")
    parser.add_argument("--host", default="login.cluster.example")
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--user", default="researcher")
    parser.add_argument("--identity", default=None, help="private key file (default: the SSH agent, ~/.ssh/id_*)")
    parser.add_argument("--job-dir", default="/scratch/researcher/runs")
    parser.add_argument("--partition", default="gpu")
    parser.add_argument("--account", default=None)
    parser.add_argument("--python", default="python3", help="the interpreter on the cluster (with nemorun installed)")
    args = parser.parse_args()

    tunnel = run.SSHTunnel(host=args.host, port=args.port, user=args.user, identity=args.identity,
                           job_dir=args.job_dir)
    executor = run.SlurmExecutor(tunnel=tunnel, partition=args.partition, account=args.account, time="00:30:00",
                                 python=args.python, packager=run.GitArchivePackager(include_uncommitted=True))
    with run.Experiment("lr-sweep", description="learning-rate sweep on Slurm") as exp:
        runs = [exp.add(train, learning_rate=lr, executor=executor, name=f"train-{lr}") for lr in (0.01, 0.03, 0.1)]
        exp.add(evaluate, executor=executor, dependencies=runs, name="evaluate")
        if args.dryrun:
            exp.dryrun()
            return
        exp.run(detach=True)
    print(f"submitted {exp.id}; follow it with: nemorun experiment status {exp.id} --watch")


if __name__ == "__main__":
    main()
