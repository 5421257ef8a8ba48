"""Operator extra links of :class:`~nemorun_airflow.operators.NemorunOperator`: the job's log, as a button in the
task instance's view.

Generic over the job contract: the log's URL comes from ``Executor.log_location(handle)``, the backend page's
from ``Executor.job_url(handle)`` ("Backend UI", shown for backends that have a UI of their own). A location that is a URL is
linked as it is, an absolute local path as a ``file://`` URL; anything else (a remote path such as
``user@host:22:/path``, a command such as ``docker logs ...``) is no URL, so no link is shown (the location is still
in the task's XCom summary and its log). The operator records the URL as soon as it knows its job (a submission or a
re-attachment) and pushes it to XCom under the link's key, so the button works while the job runs, not only after the
task ended; Airflow's own push at the end of the try asks :meth:`NemorunJobLogLink.get_link`, which answers the same.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


def log_url(location: str | None) -> str:
    """The URL for a location (``""``: none): see :func:`nemorun_core.orchestration.location_url`."""
    from nemorun_core.orchestration import location_url

    return location_url(location) or ""


class NemorunJobLogLink(BaseOperatorLink):
    """The "Job log" button: where the job's log is, when the backend's location for it is a URL or a local path."""

    name = "Job log"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from nemorun_airflow.operators import NemorunOperator

        if isinstance(operator, NemorunOperator):
            return operator.job_links.get(self.name, "")
        return ""


class NemorunBackendLink(BaseOperatorLink):
    """The "Backend UI" button: the job's page in the backend's own UI (``Executor.job_url``), where it has one."""

    name = "Backend UI"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from nemorun_airflow.operators import NemorunOperator

        if isinstance(operator, NemorunOperator):
            return operator.job_links.get(self.name, "")
        return ""


__all__ = ["NemorunBackendLink", "NemorunJobLogLink", "log_url"]
