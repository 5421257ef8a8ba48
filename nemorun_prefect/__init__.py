"""nemorun for Prefect 3: experiments and jobs as Prefect tasks, flows and blocks.

This layer is thin: it speaks in orchestration concepts only (tasks, flows, artifacts, blocks) and reaches
every backend through the ``nemorun_core`` job contract, so it imports no backend SDK itself. Importing this
package must not import ``prefect`` either; the integrations live in submodules that do.
"""

__all__: list[str] = []
