"""Great Expectations 1.x Data Docs sites as this project builds them.

- Validation pages show each expectation's ``notes`` (GX 1.x renders them on the suite page
  only, behind an icon): ``ValidationResultsTableWithNotes``, named in the site's config, adds
  them, visible, under the expectation in every row of the validation table.
- After each build, ``include.mlops.validation.data_docs.localize_site`` points the pages at local CSS/JS.

``include.mlops.validation.suite`` configures the sites (``configure_sites``) before each checkpoint run.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from great_expectations.render import RenderedMarkdownContent, TextContent
from great_expectations.render.renderer.content_block import ValidationResultsTableContentBlockRenderer

if TYPE_CHECKING:
    from collections.abc import Callable

    from great_expectations.data_context import AbstractDataContext

# Merged by GX's SiteBuilder into its default section builders: only the validation table changes.
SITE_SECTION_BUILDERS: dict[str, Any] = {
    "validations": {
        "renderer": {
            "class_name": "ValidationResultsPageRenderer",
            "column_section_renderer": {
                "class_name": "ValidationResultsColumnSectionRenderer",
                "table_renderer": {"module_name": __name__, "class_name": "ValidationResultsTableWithNotes"},
            },
        }
    }
}


def notes_block(notes: str | list[str] | None) -> TextContent | None:
    """An expectation's notes as always-visible markdown (GX's suite page hides them in a collapse)."""
    items = [notes] if isinstance(notes, str) else [n for n in notes or [] if n]
    if not items:
        return None
    # The block takes the table cell's styling; each paragraph gets its own (muted, small).
    style = {"parent": {"classes": ["small", "text-muted"]}}
    return TextContent(
        text=[RenderedMarkdownContent(content_block_type="markdown", markdown=n, styling=style) for n in items]
    )


class ValidationResultsTableWithNotes(ValidationResultsTableContentBlockRenderer):
    """GX's validation results table, with each expectation's notes under its description."""

    @classmethod
    def _get_content_block_fn(cls, expectation_type: str, expectation_config: Any = None) -> Callable | None:
        row_fn = super()._get_content_block_fn(expectation_type=expectation_type, expectation_config=expectation_config)
        if row_fn is None:
            return None

        def row_with_notes(configuration=None, result=None, runtime_configuration=None, **kwargs):
            rows = row_fn(
                configuration=configuration, result=result, runtime_configuration=runtime_configuration, **kwargs
            )
            config = getattr(result, "expectation_config", None)
            notes = notes_block(getattr(config, "notes", None))
            if notes and rows:
                # A row is [status, expectation, observed value, ...]; the expectation cell may be
                # one block or a list of them (description, unexpected-value statement).
                row = rows[0]
                row[1] = [*row[1], notes] if isinstance(row[1], list) else [row[1], notes]
            return rows

        return row_with_notes


def configure_sites(context: AbstractDataContext) -> list[Path]:
    """Use ``SITE_SECTION_BUILDERS`` in every local Data Docs site; returns the sites' folders.

    Saves the context's config only when it changes (the first run in a new MLOPS_HOME).
    """
    folders = []
    for name, site in context.list_data_docs_sites().items():
        backend = site.get("store_backend") or {}
        if backend.get("class_name") != "TupleFilesystemStoreBackend":
            continue
        wanted = copy.deepcopy(dict(site))
        wanted["site_section_builders"] = copy.deepcopy(SITE_SECTION_BUILDERS)
        if wanted != site:
            context.update_data_docs_site(name, wanted)
        folders.append(Path(context.root_directory) / backend["base_directory"])
    return folders
