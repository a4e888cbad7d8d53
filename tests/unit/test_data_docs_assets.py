"""The pinned Data Docs assets and the page rewrite, without npm or GX runs (tests/integration/test_data_docs.py builds real sites)."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from include.mlops.validation import data_docs

pytestmark = pytest.mark.unit

MANIFEST = data_docs.load_manifest()


def test_every_cdn_url_the_installed_gx_templates_load_is_pinned():
    import importlib.util

    package = Path(importlib.util.find_spec("great_expectations").origin).parent  # no import: seconds
    templates = package / "render" / "view" / "templates"
    loads = set()
    for template in templates.glob("*.j2"):
        for tag in re.findall(r"<(?:link|script)\b[^>]*>", template.read_text()):
            loads.update(re.findall(r"""(?:href|src)=["'](https?://[^"']+)""", tag))
    assert len(loads) >= 15, loads
    assert loads <= set(MANIFEST["pages"]), f"unpinned: {sorted(loads - set(MANIFEST['pages']))}"


def test_pins_are_exact_and_every_page_url_names_a_pinned_file():
    for key, spec in MANIFEST["packages"].items():
        assert re.fullmatch(r"(@[\w.-]+/)?[\w.-]+@\d+\.\d+\.\d+", spec["npm"]), spec["npm"]
        assert data_docs.tarball_name(spec["npm"]) == f"{key}.tgz"
        assert spec["integrity"].startswith("sha512-") and spec["why"]
    for url, target in MANIFEST["pages"].items():
        key, _, path = target.partition("/")
        files = MANIFEST["packages"][key]["files"]
        assert path in files or any(f.endswith("/") and path.startswith(f) for f in files), url


def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def spec_for(data: bytes, **extra) -> dict:
    return {"npm": "lib@1.0.0", "integrity": data_docs.sri(data), "files": ["dist/lib.min.js", "fonts/"], **extra}


def test_install_keeps_only_the_listed_files_of_the_pinned_tarball(tmp_path):
    data = tarball({"dist/lib.min.js": b"js", "dist/lib.js": b"src", "fonts/a.woff2": b"f", "README.md": b"r"})
    spec = spec_for(data, sri={"dist/lib.min.js": data_docs.sri(b"js", "sha384")})
    folder = data_docs.install_tarball(data, "lib-1.0.0", spec, tmp_path)
    kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert kept == [".integrity", "dist/lib.min.js", "fonts/a.woff2"]
    assert data_docs.is_installed(tmp_path, "lib-1.0.0", spec)
    assert oct(folder.stat().st_mode & 0o777) == "0o755"  # a web server running as another user reads it


@pytest.mark.parametrize("damage", ["tarball", "sri", "missing_file"])
def test_install_refuses_what_is_not_the_pin(tmp_path, damage):
    data = tarball({"dist/lib.min.js": b"js", "fonts/a.woff2": b"f"})
    spec = spec_for(data)
    if damage == "tarball":
        spec["integrity"] = data_docs.sri(b"another tarball")
    elif damage == "sri":
        spec["sri"] = {"dist/lib.min.js": data_docs.sri(b"the CDN's bytes", "sha384")}
    else:
        spec["files"].append("dist/lib.css")
    with pytest.raises(data_docs.AssetError):
        data_docs.install_tarball(data, "lib-1.0.0", spec, tmp_path)
    assert not (tmp_path / "lib-1.0.0").exists()


def test_fetch_from_tarballs_is_idempotent_and_needs_no_npm(tmp_path):
    data = tarball({"dist/lib.min.js": b"js", "fonts/a.woff2": b"f"})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "lib-1.0.0.tgz").write_bytes(data)
    manifest = {"packages": {"lib-1.0.0": spec_for(data)}}
    args = dict(manifest=manifest, tarballs=tmp_path / "in", npm="no-such-npm")
    assert data_docs.fetch_assets(tmp_path / "out", **args) == ["lib-1.0.0"]
    assert data_docs.fetch_assets(tmp_path / "out", **args) == []
    with pytest.raises(data_docs.AssetsUnavailable):
        data_docs.fetch_assets(tmp_path / "other", manifest=manifest, npm="no-such-npm")


PAGE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" integrity="sha384-x" crossorigin="anonymous"></script>
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<script src="https://cdn.example.org/other.js"></script>
<link rel="shortcut icon" href="../../../static/images/favicon.ico"/>
<style>.navbar-brand a { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png') }</style>
</head><body><img
  src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=2"/>
<a href="https://greatexpectations.io">GX</a></body></html>"""


def test_page_urls_become_relative_to_the_page_and_unknown_ones_are_reported():
    available = {"bootstrap-4.3.1", "popper.js-1.12.9"}  # jquery not fetched
    html, unmapped = data_docs.localize_page(PAGE, 4, MANIFEST, available, {"logo-long.png", "favicon.ico"})
    up = "../../../../"
    assert f'href="{up}static/vendor/bootstrap-4.3.1/dist/css/bootstrap.min.css"' in html
    assert f'<script src="{up}static/vendor/popper.js-1.12.9/dist/umd/popper.min.js"></script>' in html  # no sri
    assert f'href="{up}static/images/favicon.ico"' in html  # GX's depth was one short
    assert f'src="{up}static/images/logo-long.png"' in html and "url('data:,')" in html
    assert 'href="https://greatexpectations.io"' in html  # a link to click, not a load
    assert unmapped == ["https://code.jquery.com/jquery-3.7.1.min.js", "https://cdn.example.org/other.js"]
    again, _ = data_docs.localize_page(html, 4, MANIFEST, available, {"logo-long.png", "favicon.ico"})
    assert again == html
    index, _ = data_docs.localize_page(PAGE, 0, MANIFEST, available, set())
    assert 'href="static/vendor/bootstrap-4.3.1/dist/css/bootstrap.min.css"' in index
