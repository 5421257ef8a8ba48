"""Run a DAG file once in this process: what ``python my_dag.py`` does for the example DAGs.

``dag.test()`` on Airflow 3.3 runs the DAG from its serialized form, so it needs a metadata database and the DAG
file inside the configured DAGs folder ("Cannot create DagRun ... because the dag is not serialized" otherwise).
:func:`run_dag_file` provides both for a quick local try, without changing anything a real deployment uses.
"""

from __future__ import annotations

import os
from typing import Any


def run_dag_file(dag: Any, path: str) -> Any:
    """``dag.test()`` of the DAG defined in ``path``; returns the finished DagRun.

    Meant for ``if __name__ == "__main__":`` of a DAG file. When the configured DAGs folder does not hold the file,
    the script is started again (``exec``, same arguments) with the file's directory as its DAGs folder, for that
    process only; a metadata database that has never been set up is migrated first (an existing one is left as
    is).

    Example:
        >>> if __name__ == "__main__":
        ...     run_dag_file(dag, __file__)
    """
    from airflow.configuration import conf
    from airflow.utils import db

    here = os.path.dirname(os.path.abspath(path))
    folder = os.path.abspath(os.path.expanduser(conf.get("core", "dags_folder")))
    if os.path.commonpath([folder, here]) != folder:
        # Airflow reads its DAG bundles' folder once per process: start this script again with the setting.
        import sys

        env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": here}
        os.execve(sys.executable, [sys.executable, os.path.abspath(path), *sys.argv[1:]], env)
    try:
        db.check_migrations(timeout=0)
    except Exception:  # noqa: BLE001 - any "not migrated" answer: set the database up, as `airflow db migrate`
        db.upgradedb()
    return dag.test()
