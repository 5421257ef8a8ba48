"""SSHTunnel as configuration: no server needed (the real-server tests are tests/integration/test_ssh_tunnel.py)."""

import copy
import dataclasses
import pickle
import subprocess
import sys

import pytest

import nemorun_core as run
from nemorun_core.errors import ConfigError
from nemorun_core.secrets import redact


def _spec_example():
    # the example of spec/technical-capabilities.md, as written
    return run.SSHTunnel(host="login.cluster.com", user="researcher", identity="~/.ssh/id_ed25519",
                         job_dir="/scratch/researcher/runs", port=22, timeout=30, compression=True,
                         keepalive_interval=60)


def test_spec_example_and_defaults():
    t = _spec_example()
    assert t.address == "researcher@login.cluster.com:22"
    assert t.identity == "~/.ssh/id_ed25519", "kept as written: expanded where it is used, not where it is made"
    assert (t.host_key_policy, t.known_hosts, t.use_agent) == ("strict", "~/.ssh/known_hosts", True)
    assert run.SSHTunnel("h", "u", "/jobs", "~/.ssh/key").identity == "~/.ssh/key"


def test_bad_host_key_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="host_key_policy must be one of 'strict', 'accept-new'"):
        run.SSHTunnel(host="h", user="u", job_dir="/j", host_key_policy="ask")


def test_copies_and_pickles_are_plain_values():
    t = _spec_example()
    assert copy.deepcopy(t) == t
    assert pickle.loads(pickle.dumps(t)) == t
    assert set(vars(t)) == {f.name for f in dataclasses.fields(t)}, "no connection or cache kept on the object"


def test_passphrase_is_redacted_and_hidden_from_repr():
    t = run.SSHTunnel(host="h", user="u", job_dir="/j", passphrase="hunter22")
    assert "hunter22" not in repr(t)
    stored = redact(dataclasses.asdict(t))
    assert stored["passphrase"] == "<redacted>"
    assert stored["identity_env"] is None and stored["host"] == "h"


def test_importing_the_api_does_not_import_paramiko():
    code = ("import sys, nemorun_core as run, nemorun_core.tunnel as t; run.SSHTunnel; run.LocalTunnel; "
            "t.ssh_stats('a'); import nemorun_core.tunnel.ssh; print('paramiko' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_store_keeps_where_secrets_come_from_but_not_the_secrets():
    from nemorun_core.config import serialize
    from nemorun_core.secrets import REDACTED, redact

    import nemorun_core as run

    t = run.SSHTunnel(host="h", user="u", job_dir="/j", passphrase="hunter2-long", passphrase_env="MY_PASS")
    stored = redact(serialize.encode(t, payload=True))
    assert stored["passphrase"] == REDACTED and stored["passphrase_env"] == "MY_PASS"
