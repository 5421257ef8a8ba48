"""The nemorun blocks as a user meets them in Prefect's own web UI: a real ``prefect server start`` with its UI,
looked at in headless Chromium (scripts/services/browser.sh).

The expectations are read from the blocks themselves (each block class's ``model_json_schema()``: every declared
field's title and description must be visible on its create form), so the checks follow the blocks as they change;
a few labels a user must always find are fixed here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from nemorun_core.secrets import REDACTED
from tests.integration._browser import browser_page, plain, visible_lines

pytestmark = pytest.mark.prefect

# The block types every install has (tests/prefect/test_blocks.py: SLUGS), and one form per backend.
CORE_SLUGS = {"nemorun-executor", "nemorun-ssh-cluster", "nemorun-bearer-token", "nemorun-api-key",
              "nemorun-kubeconfig"}
SECRET = "sk-ui-form-check-0123456789abcdef"


@pytest.fixture(scope="module")
def prefect_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``prefect server start`` with its UI, on 127.0.0.1 and a free port, its own PREFECT_HOME; yields the base URL.

    PREFECT_UI_API_URL must name the same port: the UI's scripts call the API at that address (by default the
    settings' port 4200, not the one given on the command line).
    """
    root = tmp_path_factory.mktemp("prefect-ui")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_", "PREFECT_UI_"))}
    env.update(PREFECT_HOME=str(root / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="true",
               PREFECT_SERVER_UI_ENABLED="true", PREFECT_UI_API_URL=f"{base}/api")
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port), "--analytics-off"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prefect server with UI on {base} did not start (status {proc.poll()}); its log "
                            f"({log_path}) ends with:\n{log_path.read_text(errors='replace')[-4000:]}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=2) as r1, \
                        urllib.request.urlopen(f"{base}/", timeout=5) as r2:
                    if r1.status == 200 and b"<html" in r2.read():
                        break
            except OSError:
                pass
            time.sleep(0.3)
        yield base
    finally:
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(grace)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def nemorun_slugs(prefect_ui: str) -> list[str]:
    """The nemorun block types the server registered at start-up (Prefect's collections entry point)."""
    import json

    request = urllib.request.Request(f"{prefect_ui}/api/block_types/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        slugs = sorted(b["slug"] for b in json.load(response) if b["slug"].startswith("nemorun-"))
    from nemorun_core.executors import registry

    expected = CORE_SLUGS | {f"nemorun-{e.name}-executor" for e in registry.entries()}
    assert expected <= set(slugs), f"block types missing on the server: {sorted(expected - set(slugs))}"
    return slugs


def _block_class(slug: str):
    import nemorun_prefect.blocks  # noqa: F401  (registers the block classes, the executor forms included)
    import nemorun_prefect.jobs  # noqa: F401
    from prefect.blocks.core import Block
    from prefect.utilities.dispatch import lookup_type

    return lookup_type(Block, slug)


def _open_create_form(page, base: str, slug: str, title: str) -> set[str]:
    page.goto(f"{base}/blocks/catalog/{slug}/create")
    page.get_by_text("Block Name", exact=True).wait_for()
    page.get_by_role("heading", name=title).first.wait_for()
    return visible_lines(page.locator("body"))


def _form_problems(cls, lines: set[str], text: str) -> list[str]:
    """What a user cannot see on the create form of ``cls``: a field's title, a field's description (with the
    ``<redacted>`` it mentions), the block's own description."""
    problems = []
    schema = cls.model_json_schema()
    for name, prop in schema["properties"].items():
        if "$ref" in prop:
            # Prefect's form labels a nested model (a settings group) with the model's own title and description,
            # not the field's: that is what the user sees.
            prop = schema["definitions"][prop["$ref"].rsplit("/", 1)[-1]]
        title = prop.get("title") or name
        if title not in lines and f"{title} (Optional)" not in lines:
            problems.append(f"field {name!r}: its title {title!r} is not shown")
        description = prop.get("description")
        if description and plain(description) not in text:
            problems.append(f"field {name!r}: its description is not shown as written: {description!r}")
        if description and REDACTED in description and REDACTED not in text:
            problems.append(f"field {name!r}: {REDACTED!r} in its description is not visible (read as HTML?)")
    description = cls.get_description()
    if description and plain(description) not in text:
        problems.append(f"the block's description is not shown: {description!r}")
    return problems


def test_every_nemorun_block_form_shows_each_declared_field_title_and_description(prefect_ui, nemorun_slugs,
                                                                                   tmp_path) -> None:
    problems: dict[str, list[str]] = {}
    with browser_page(tmp_path) as page:
        for slug in nemorun_slugs:
            cls = _block_class(slug)
            lines = _open_create_form(page, prefect_ui, slug, cls.get_block_type_name())
            text = plain(page.locator("body").inner_text())
            found = _form_problems(cls, lines, text)
            # The logo the block declares is the image of its card (offline it cannot load: the URL is what counts).
            logos = page.locator(f'img[src="{cls._logo_url}"]')
            if cls._logo_url and logos.count() == 0:
                found.append(f"no image with the block's logo URL {cls._logo_url}")
            if found:
                problems[slug] = found
    assert not problems, "\n".join(f"{slug}:\n  " + "\n  ".join(p) for slug, p in problems.items())


def test_ssh_cluster_form_has_the_login_fields_and_keeps_the_key_secret(prefect_ui, nemorun_slugs, tmp_path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    from nemorun_prefect.blocks import NemorunSSHCluster

    assert {"private_key", "passphrase"} <= set(NemorunSSHCluster.model_json_schema()["secret_fields"])
    # Saved before the browser starts: Playwright's sync API runs an event loop in this thread, in which Prefect's
    # sync calls would return coroutines.
    with temporary_settings(updates={PREFECT_API_URL: f"{prefect_ui}/api"}):
        block_id = NemorunSSHCluster(host="login.example.org", user="alice", job_dir="/scratch/alice",
                                     private_key=SecretStr(SECRET)).save("ui-form-check", overwrite=True)
    with browser_page(tmp_path) as page:
        lines = _open_create_form(page, prefect_ui, "nemorun-ssh-cluster", "Nemorun SSH Cluster")
        for label in ("Host", "User", "Job Dir", "Port (Optional)", "Private Key"):
            assert label in lines, f"the SSH cluster form shows no {label!r}: {sorted(lines)}"

        # Saved, the key is shown masked on the block's page and is nowhere in what the page was sent.
        page.goto(f"{prefect_ui}/blocks/block/{block_id}")
        page.get_by_text("login.example.org").first.wait_for()
        shown = page.locator("body").inner_text()
        assert "Private Key" in shown and "********" in shown, shown
        assert SECRET not in page.content()
        page.goto(f"{prefect_ui}/blocks/block/{block_id}/edit")
        page.get_by_text("Job Dir", exact=False).first.wait_for()
        assert SECRET not in page.content()


def test_executor_block_form_shows_its_fields_and_redacted_in_the_config_description(prefect_ui, nemorun_slugs,
                                                                                     tmp_path) -> None:
    from nemorun_prefect.blocks import NemorunExecutorBlock

    schema = NemorunExecutorBlock.model_json_schema()
    with browser_page(tmp_path) as page:
        lines = _open_create_form(page, prefect_ui, "nemorun-executor", "Nemorun Executor")
        text = page.locator("body").inner_text()
        assert "Executor Config" in lines and "Secrets (Optional)" in lines, sorted(lines)
        mentions = [n for n, p in schema["properties"].items() if REDACTED in (p.get("description") or "")]
        assert mentions, "no field description of the executor block says where <redacted> values are"
        assert text.count(REDACTED) >= len(mentions), f"{REDACTED!r} is not visible in the form:\n{text}"
        # The per-backend forms are listed in the catalog next to it, with the documentation link.
        page.goto(f"{prefect_ui}/blocks/catalog/nemorun-slurm-executor")
        page.get_by_role("heading", name="Nemorun Slurm Executor").first.wait_for()
        from nemorun_prefect.blocks import DOCS_URL

        links = page.locator(f'a[href="{DOCS_URL}"]')
        from playwright.sync_api import TimeoutError as RenderTimeout

        try:  # the card's links render after its heading: wait for one (a loaded CI machine is slow to render)
            links.first.wait_for(state="attached", timeout=30_000)
        except RenderTimeout:
            pass  # the assertion says what is missing
        assert links.count() >= 1, f"no documentation link to {DOCS_URL} on the block type's catalog page"
