"""The lazy public API: names bind on first use, dir() is the curated list, unknown names fail clearly."""

import subprocess
import sys

import pytest


def test_dir_is_the_public_table_and_unknown_names_fail():
    import nemorun_core
    import nemorun_core.tunnel as tunnel

    assert dir(nemorun_core) == nemorun_core.__all__ and "lazy_exports" not in dir(nemorun_core)
    assert dir(tunnel) == tunnel.__all__
    with pytest.raises(AttributeError, match="has no attribute 'Confg'"):
        nemorun_core.Confg  # noqa: B018


def test_importing_the_packages_loads_no_heavy_dependency():
    code = ("import sys, nemorun_core, nemorun_core.tunnel, nemorun_prefect\n"
            "print(sorted(m for m in ('fiddle', 'paramiko', 'docker', 'prefect', 'yaml', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
