"""Data Docs that real GX validations build: offline, with the suite's notes, tied to the Airflow run.

The page of a run is ``PartitionValidation.data_docs`` (a file:// URL into the site at
``<gx_root>/gx/uncommitted/data_docs/local_site``); ``site_of`` and ``page_of`` below find both.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from devstack.datagen import write_day
from include.mlops.validation import data_docs
from include.mlops.validation.suite import validate_partition
from tests.conftest import DAY0
from tests.conftest import validation_kwargs as kwargs

pytestmark = pytest.mark.integration

ROWS = 20000
RUN_ID = "scheduled__2026-01-02T00:00:00+00:00"
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")


@pytest.fixture(scope="session")
def assets():
    """The pinned packages, fetched once if missing (what `make docs-assets` does)."""
    try:
        data_docs.fetch_assets()
    except data_docs.AssetsUnavailable as exc:
        pytest.skip(f"Data Docs assets cannot be fetched here ({exc}): run `make docs-assets` with npm")
    return data_docs.assets_dir()


def site_of(settings) -> Path:
    return settings.gx_root / "gx" / "uncommitted" / "data_docs" / "local_site"


def page_of(result) -> Path:
    assert result.data_docs and result.data_docs.startswith("file://"), result.data_docs
    return Path(unquote(urlsplit(result.data_docs).path))


class Page(HTMLParser):
    """The URLs a browser loads for a page (link/script/img), its inline CSS and its visible text."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.loads: list[str] = []
        self.styles: list[str] = []
        self.text_parts: list[str] = []
        self._in: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("link", "script", "img"):
            url = attrs.get("href" if tag == "link" else "src")
            if url:
                self.loads.append(url)
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        if tag in ("script", "style"):
            self._in.append(tag)

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        if not self._in:
            self.text_parts.append(data)
        elif self._in[-1] == "style":
            self.styles.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())


def remote(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https") or url.startswith("//")


def assert_offline(page_path: Path, site: Path) -> set[Path]:
    """No load leaves the site; every file a page (or its stylesheets) loads exists in it."""
    page = Page(page_path)
    assert page.loads, f"{page_path}: no resources at all?"
    assert not [u for u in page.loads if remote(u)], f"{page_path} loads from the network"
    inline = [u for style in page.styles for u in CSS_URL.findall(style)]
    assert not [u for u in inline if remote(u)], f"{page_path}: inline CSS loads from the network"
    files = set()
    for url in page.loads:
        if url.startswith("data:"):
            continue
        target = (page_path.parent / unquote(urlsplit(url).path)).resolve()
        assert target.is_file(), f"{page_path}: {url} -> {target} does not exist"
        assert target.is_relative_to(site.resolve()), f"{page_path}: {url} points outside the site"
        files.add(target)
    for css in [f for f in files if f.suffix == ".css"]:
        for url in CSS_URL.findall(css.read_text(encoding="utf-8")):
            if url.startswith("data:"):
                continue
            assert not remote(url), f"{css} loads {url}"
            target = (css.parent / unquote(urlsplit(url).path)).resolve()
            assert target.is_file(), f"{css}: {url} -> {target} does not exist"  # font-awesome's webfonts
    return files


def card_number_note(settings, column: str) -> str:
    suite = json.loads((settings.expectations_dir / "card_fraud.json").read_text())
    (note,) = [
        e["notes"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_contain_no_card_numbers" and e["kwargs"]["column"] == column
    ]
    return note


def test_validation_page_is_offline_shows_notes_and_names_the_airflow_run(card_fraud, home, assets):
    write_day(home.lake, DAY0, ROWS)
    result = validate_partition(card_fraud, DAY0, **kwargs(home, airflow_run_id=RUN_ID))
    assert result.success
    site, page = site_of(home), page_of(result)
    assert page.is_relative_to(site / "validations" / "card_fraud")
    loaded = set()
    for path in (page, site / "index.html"):
        loaded |= assert_offline(path, site)
    vendored = {p for p in loaded if site.joinpath(*data_docs.VENDOR).resolve() in p.parents}
    # Every file the manifest maps a CDN URL to is loaded, from the site, by this page or the index.
    assert len(vendored) == len(set(data_docs.load_manifest()["pages"].values())), sorted(map(str, vendored))
    text = Page(page).text
    assert card_number_note(home, "merchant_descriptor") in text
    assert f"Run Name {card_fraud.name}:{DAY0.isoformat()}@{RUN_ID}" in text
    assert RUN_ID in (site / "index.html").read_text()  # the index's table (script data) lists the run too

    # A later Airflow run reuses the result: it gets the page (and run id) that validated the bytes.
    again = validate_partition(card_fraud, DAY0, **kwargs(home, airflow_run_id="manual__2026-01-05T00:00:00+00:00"))
    assert again.reused and again.data_docs == result.data_docs and again.airflow_run_id == RUN_ID


def test_failed_validation_page_is_offline_and_explains_the_card_number_check(card_fraud, home, assets):
    day = DAY0 + dt.timedelta(days=1)
    write_day(home.lake, day, ROWS, defect="raw_card_numbers")
    result = validate_partition(card_fraud, day, **kwargs(home, airflow_run_id=RUN_ID))
    assert not result.success
    assert any(f.expectation == "expect_column_values_to_contain_no_card_numbers" for f in result.failed)
    page = page_of(result)
    assert_offline(page, site_of(home))
    text = Page(page).text
    assert card_number_note(home, "merchant_descriptor") in text
    assert RUN_ID in text and "REFUND CARD" not in text


def test_without_assets_validation_still_passes_and_warns_once(card_fraud, home, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(data_docs.ASSETS_ENV, str(tmp_path / "no-assets"))
    write_day(home.lake, DAY0, ROWS)
    with caplog.at_level(logging.WARNING, logger="include.mlops"):
        result = validate_partition(card_fraud, DAY0, **kwargs(home))
    assert result.success
    warnings = [
        r.getMessage() for r in caplog.records if r.name.startswith("include.mlops") and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1 and "make docs-assets" in warnings[0], warnings
    page = Page(page_of(result))
    assert any(remote(u) for u in page.loads)  # the CDN links stay: online the page still renders
