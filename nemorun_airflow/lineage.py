"""OpenLineage run facets of a nemorun job: which executor (backend), which job (its id and key), its log.

:class:`~nemorun_airflow.operators.NemorunOperator` answers the OpenLineage provider's
``get_openlineage_facets_on_start`` / ``get_openlineage_facets_on_complete`` with one custom run facet, ``nemorun``,
built from :func:`job_facet_fields`. The provider (``apache-airflow-providers-openlineage``) is optional and imported
only when those hooks are called, which only it does: without it, nothing here imports it.
"""

from __future__ import annotations

from typing import Any

#: The facet's name in the run's ``facets``.
FACET_NAME = "nemorun"
#: Schema URL the facet declares (custom facets must name one).
SCHEMA_URL = "https://github.com/nemorun/nemorun/blob/main/docs/airflow.md#openlineage"


def job_facet_fields(executor: Any, handle: Any = None, state: str | None = None) -> dict[str, Any]:
    """The facet's fields: ``backend`` (the executor's), and once there is a job ``job_id``, ``key``, ``log``
    (``Executor.log_location``) and ``state``; plain strings, no secret (a handle holds none)."""
    fields: dict[str, Any] = {"backend": handle.backend if handle is not None else executor.backend,
                              "executor": type(executor).__name__}
    if handle is not None:
        fields.update(job_id=handle.job_id, key=handle.key, log=executor.log_location(handle) or "")
    if state is not None:
        fields["state"] = state
    return fields


def operator_lineage(fields: dict[str, Any]) -> Any:
    """An ``OperatorLineage`` with the ``nemorun`` run facet holding ``fields``; None without the provider."""
    try:
        import attrs
        from airflow.providers.common.compat.openlineage.facet import RunFacet
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None

    @attrs.define(kw_only=True)
    class NemorunRunFacet(RunFacet):  # type: ignore[misc, valid-type]
        backend: str
        executor: str
        job_id: str | None = None
        key: str | None = None
        log: str | None = None
        state: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return SCHEMA_URL

    return OperatorLineage(run_facets={FACET_NAME: NemorunRunFacet(**fields)})


__all__ = ["FACET_NAME", "job_facet_fields", "operator_lineage"]
