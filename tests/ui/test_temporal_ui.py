"""The Temporal UI in a real browser (Debian's chromium, driven by Playwright): a migration held
in its transfer phase is found by its region and shows its phase and its steps' summaries."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import FloatRect, Locator, Page, async_playwright, expect
from temporalio.client import WorkflowHandle

from contracts.models import MigrationInput, Phase
from protos import air_node_pb2 as pb
from stack.processes import TemporalServer
from tests.integration.test_workflows import activity_summaries
from tests.support.cluster import HELD
from tests.support.requirements import require
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.migration import RegionMigrationWorkflow

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and none of Chromium's own traffic: the page's loopback requests are the only ones.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
REGION = 700  # no other test's: the UI lists every workflow of the session's server
VIEWPORT_WIDTH = 1600  # the event history's summaries fit
RENDERED_MS = 15_000  # how long the UI may take to load and render what a check looks for


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    require(None if CHROMIUM.exists() else f"no {CHROMIUM}: apt-get install chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page(viewport={"width": VIEWPORT_WIDTH, "height": 900})
        finally:
            await browser.close()


async def test_a_migration_in_the_temporal_ui(
    stack: Stack, temporal_server: TemporalServer, page: Page
) -> None:
    migration = await migration_held_in_transfer(stack, REGION)
    summaries = list(dict.fromkeys(await activity_summaries(migration)))  # each once
    assert f"create region {REGION} on node 3, inactive, peers [1, 2, 3]" in summaries, summaries
    waiting = next(s for s in summaries if s.startswith("wait until nodes [3] applied"))
    search = urlencode({"query": f"AirRegion = {REGION}"})
    workflows = f"{temporal_server.ui_url}/namespaces/default/workflows?{search}"

    await page.goto(workflows)
    # the list took the query: it shows it as its filter
    await expect(page.get_by_title(f"AirRegion = {REGION}")).to_be_visible(timeout=RENDERED_MS)
    await expect(workflow_link(page, migration.id)).to_be_visible(timeout=RENDERED_MS)
    await screenshot(page, "workflows")

    await workflow_link(page, migration.id).click()
    await expect_current_details(page, "phase: TRANSFERRING")
    # the static summary and details the starter gave it: what it is, its input, who started it
    await expect_user_metadata(page, "summary", f"migrate region {REGION}: node 1 -> node 3")
    await expect_user_metadata(page, "details", "started by")
    await screenshot(page, "migration-details", height=620)  # below the details: blank

    # The timeline labels an activity "type • summary"; local activities there carry no summary.
    await page.get_by_role("tab", name="Timeline").click()
    await expect(page.get_by_text(f"wait_transfer_complete • {waiting}").first).to_be_visible(
        timeout=RENDERED_MS
    )
    await screenshot(page, "migration-timeline")

    # The event history shows every summary, the local activities' (markers) too.
    await page.get_by_role("tab", name="Event History").click()
    await page.get_by_role("button", name="Descending").click()  # oldest first: every step
    rows = [page.get_by_text(summary, exact=True).first for summary in summaries]
    for row in rows:
        await expect(row).to_be_visible(timeout=RENDERED_MS)
    await page.set_viewport_size({"width": VIEWPORT_WIDTH, "height": 1400})  # the steps' rows
    await screenshot(page, "migration-history")

    await one_under_another(
        page, ["migration-details", "migration-timeline"], "migration-in-the-temporal-ui"
    )
    # the migration stays held; the stack fixture terminates it


async def migration_held_in_transfer(stack: Stack, region: int) -> WorkflowHandle[Any, Any]:
    """A migration 1 -> 3 in its transfer phase, which lasts: its senders are held."""
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(region, [1, 2])
    points = [pb.Point(series=f"s{t}", timestamp=t, value=t) for t in range(100)]
    await cluster.stub(1).Write(pb.WriteRequest(region=region, points=points))
    await cluster.converged(region, [1, 2], count=len(points))
    await cluster.throttle([1, 2], HELD)
    stack.start_worker()

    migration = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=region, from_node=1, to_node=3)
    )
    await eventually(
        lambda: stack.progress(migration),
        lambda p: p.phase == Phase.TRANSFERRING,
        what="the transfer phase",
    )
    await eventually(
        lambda: listed(stack, f"AirRegion = {region}"),
        lambda ids: migration.id in ids,
        what="the migration in the visibility store the UI lists from",
    )
    return migration


async def listed(stack: Stack, query: str) -> set[str]:
    return {w.id async for w in stack.client.list_workflows(query)}


def workflow_link(page: Page, workflow_id: str) -> Locator:
    return page.get_by_role("link", name=workflow_id, exact=True)


async def expect_current_details(page: Page, text: str) -> None:
    await page.get_by_role("tab", name="User Metadata").click()
    await expect_user_metadata(page, "current-details", text)


async def expect_user_metadata(page: Page, panel: str, text: str) -> None:
    """The User Metadata tab renders each panel's Markdown in a frame of its own."""
    frame = page.frame_locator(f"#user-metadata-{panel}").locator("body")
    await expect(frame).to_contain_text(text, timeout=RENDERED_MS)


async def screenshot(page: Page, name: str, height: int | None = None) -> None:
    """The whole page, or its top `height` pixels, into the artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if height is None:
        await page.screenshot(path=path, full_page=True)
    else:
        clip: FloatRect = {"x": 0, "y": 0, "width": VIEWPORT_WIDTH, "height": height}
        await page.screenshot(path=path, clip=clip)


async def one_under_another(page: Page, names: list[str], name: str) -> None:
    """One picture of several screenshots, for the README."""
    images = "".join(
        '<img style="display:block" src="data:image/png;base64,'
        f'{base64.b64encode((ARTIFACTS / f"{n}.png").read_bytes()).decode()}">'
        for n in names
    )
    await page.set_content(f'<body style="margin:0">{images}</body>')
    await screenshot(page, name)
