"""Data Docs that render offline: the CSS/JS the GX pages load, pinned and served from the site.

GX 1.x writes pages that load bootstrap, jQuery, popper, bootstrap-table, datepicker,
font-awesome and vega from public CDNs, and its logo from GX's S3 bucket; with the network
off (an air-gapped bank) they show nothing usable. ``data_docs_assets.json`` pins each of those
files to an npm package version and the tarball's sha512. Two steps, in two places:

- ``fetch_assets`` (``make docs-assets``; the image build): ``npm pack`` each pinned package,
  check its sha512, keep only the listed files under ``assets_dir()``. Build time, network.
- ``localize_site`` (after every Data Docs build, in ``validation.run_suite``): copy them into
  the site's ``static/vendor/`` and point each page's CDN URLs at relative paths. No network.

A missing asset keeps its CDN URL and costs one warning line; docs never fail a validation.
Standard library only: the image build runs ``fetch`` before the control plane's packages exist.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from include.mlops.common.files import write_text_atomic

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("data_docs_assets.json")
PROJECT_ROOT = Path(__file__).resolve().parents[3]
ASSETS_ENV = "MLOPS_DATA_DOCS_ASSETS"
VENDOR = ("static", "vendor")  # inside a site, beside GX's own static/images and static/styles
INTEGRITY_FILE = ".integrity"  # in each installed package folder: the tarball's pinned sha512
NPM_PACK_TIMEOUT_SECONDS = 600

# The tags a browser loads a resource for, and their URL attribute.
_RESOURCE_TAG = re.compile(r"<(?:link|script|img)\b[^>]*>", re.IGNORECASE)
_URL_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
# Subresource-integrity attributes: checked at fetch time against the kept file instead (a page
# opened as file:// cannot load a script with crossorigin set, and then no integrity check runs).
_SRI_ATTRS = re.compile(r"""\s+(?:integrity|crossorigin)\s*=\s*(["']).*?\1""", re.IGNORECASE | re.DOTALL)
# GX writes its site-relative static links with a fixed depth that is wrong for some pages
# (the favicon of a validation page points one folder too high): recomputed per page.
_SITE_STATIC = re.compile(r"(?:\./|(?:\.\./)+)?(static/[^?#]*)")


class AssetError(RuntimeError):
    """A pinned package does not match the manifest (sha512, sri or a listed file)."""


class AssetsUnavailable(RuntimeError):
    """The packages cannot be fetched here (no npm, or npm cannot reach its registry)."""


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def assets_dir() -> Path:
    """Where ``fetch_assets`` installs the packages: ``$MLOPS_DATA_DOCS_ASSETS`` or ``<repo>/.local``."""
    from include.mlops.settings import data_docs_assets_dir

    return data_docs_assets_dir()


def sri(data: bytes, algorithm: str = "sha512") -> str:
    """``<algorithm>-<base64 digest>``: npm's ``dist.integrity`` and HTML's ``integrity`` format."""
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def tarball_name(npm_spec: str) -> str:
    """The file ``npm pack <name>@<version>`` writes: ``@scope/name@1.0`` -> ``scope-name-1.0.tgz``."""
    name, _, version = npm_spec.rpartition("@")
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def is_installed(root: Path, key: str, spec: dict[str, Any]) -> bool:
    stamp = Path(root) / key / INTEGRITY_FILE
    return stamp.is_file() and stamp.read_text().strip() == spec["integrity"]


def install_tarball(data: bytes, key: str, spec: dict[str, Any], dest: Path) -> Path:
    """Check a package tarball against its pin and keep its listed files in ``dest/key``."""
    got = sri(data)
    if got != spec["integrity"]:
        raise AssetError(f"{spec['npm']}: tarball {got} does not match the pinned {spec['integrity']}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {
            m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile() and m.name.startswith("package/")
        }
        kept: dict[str, bytes] = {}
        for wanted in spec["files"]:
            names = [n for n in members if n == wanted or (wanted.endswith("/") and n.startswith(wanted))]
            if not names:
                raise AssetError(f"{spec['npm']}: no {wanted} in the package")
            for name in names:
                parts = PurePosixPath(name).parts
                if ".." in parts or PurePosixPath(name).is_absolute():
                    raise AssetError(f"{spec['npm']}: unsafe path {name!r} in the package")
                kept[name] = tar.extractfile(members[name]).read()
    for name, expected in spec.get("sri", {}).items():
        if name not in kept or sri(kept[name], expected.split("-", 1)[0]) != expected:
            raise AssetError(f"{spec['npm']}: {name} is not the file the GX template's integrity names")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = _staging_dir(dest, key)
    try:
        for name, content in kept.items():
            target = staging.joinpath(*PurePosixPath(name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        (staging / INTEGRITY_FILE).write_text(spec["integrity"] + "\n")
        _replace_dir(staging, dest / key)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest / key


def _staging_dir(parent: Path, key: str) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=parent))
    staging.chmod(0o755)  # mkdtemp makes 0700; a web server running as another user reads these
    return staging


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def _npm_pack(specs: list[str], into: Path, npm: str) -> None:
    exe = shutil.which(npm)
    if exe is None:
        raise AssetsUnavailable(f"{npm} not found")
    try:
        proc = subprocess.run(
            [exe, "pack", "--silent", "--pack-destination", str(into), *specs],
            cwd=into,
            capture_output=True,
            text=True,
            timeout=NPM_PACK_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssetsUnavailable(f"npm pack took over {NPM_PACK_TIMEOUT_SECONDS} s") from exc
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise AssetsUnavailable(f"npm pack failed: {why}")


def fetch_assets(
    dest: Path | None = None,
    *,
    manifest: dict[str, Any] | None = None,
    tarballs: Path | None = None,
    npm: str = "npm",
) -> list[str]:
    """Install every pinned package missing from ``dest``; returns the keys installed (idempotent).

    Tarballs come from ``npm pack`` (npm's configured registry), or from ``tarballs``, a folder
    of ``npm pack`` output brought in by hand (air-gapped) or by the image's node build stage.
    Raises AssetsUnavailable when npm cannot deliver them, AssetError when they do not match.
    """
    dest = Path(dest or assets_dir())
    manifest = manifest or load_manifest()
    todo = {k: s for k, s in manifest["packages"].items() if not is_installed(dest, k, s)}
    if not todo:
        return []
    with tempfile.TemporaryDirectory(prefix="data-docs-assets.") as tmp:
        source = Path(tarballs) if tarballs is not None else Path(tmp)
        if tarballs is None:
            _npm_pack([s["npm"] for s in todo.values()], source, npm)
        for key, spec in todo.items():
            tarball = source / tarball_name(spec["npm"])
            if not tarball.is_file():
                raise AssetError(f"{spec['npm']}: no {tarball.name} in {source}")
            install_tarball(tarball.read_bytes(), key, spec, dest)
            log.info("Data Docs asset %s installed in %s", spec["npm"], dest / key)
    return list(todo)


# -- the site -----------------------------------------------------------------------------


@dataclass
class Localized:
    """What ``localize_site`` did: pages rewritten, packages it lacked, URLs it could not map."""

    site: Path
    pages_rewritten: int = 0
    missing: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


def _sync_vendor(site: Path, assets: Path, manifest: dict[str, Any]) -> tuple[set[str], list[str], bool]:
    """Copy installed packages into the site; returns (available keys, missing keys, copied any)."""
    vendor = site.joinpath(*VENDOR)
    available, missing, copied = set(), [], False
    for key, spec in manifest["packages"].items():
        if is_installed(vendor, key, spec):
            available.add(key)
        elif is_installed(assets, key, spec):
            vendor.mkdir(parents=True, exist_ok=True)
            staging = _staging_dir(vendor, key)
            shutil.copytree(assets / key, staging, dirs_exist_ok=True)
            _replace_dir(staging, vendor / key)
            available.add(key)
            copied = True
        else:
            missing.append(key)
    return available, missing, copied


def localize_page(
    text: str, depth: int, manifest: dict[str, Any], available: set[str], site_images: set[str]
) -> tuple[str, list[str]]:
    """One page's HTML with local URLs; returns (html, URLs of loaded resources left remote).

    ``depth`` is the page's folder depth below the site root (0 for index.html): the local
    URLs are relative, so the site works from file://, from any web server and from any path.
    """
    prefix = "../" * depth
    pages, gx_images = manifest["pages"], manifest["gx_images"]

    def gx_image(m: re.Match[str]) -> str:
        # GX's logo (the img and the dark-mode CSS background): its copy in static/images, or,
        # for an image GX does not ship, an empty image rather than a request.
        return f"{prefix}static/images/{m.group(1)}" if m.group(1) in site_images else "data:,"

    text = re.sub(re.escape(gx_images) + r"""([\w.-]+)[^"')\s]*""", gx_image, text)
    unmapped: list[str] = []

    def tag(m: re.Match[str]) -> str:
        html = m.group(0)
        attr = _URL_ATTR.search(html)
        if attr is None:
            return html
        url, local, drop_sri = attr.group(2), None, False
        if url in pages and pages[url].split("/", 1)[0] in available:
            local, drop_sri = f"{prefix}{'/'.join(VENDOR)}/{pages[url]}", True
        elif (static := _SITE_STATIC.fullmatch(url)) is not None:
            local = prefix + static.group(1)
        elif url.startswith(("http://", "https://", "//")):
            unmapped.append(url)
        if local is None:
            return html
        html = html[: attr.start(2)] + local + html[attr.end(2) :]
        return _SRI_ATTRS.sub("", html) if drop_sri else html

    return _RESOURCE_TAG.sub(tag, text), unmapped


def localize_site(
    site: Path,
    *,
    since_ns: int | None = None,
    assets: Path | None = None,
    manifest: dict[str, Any] | None = None,
) -> Localized:
    """Serve a Data Docs site's CSS/JS from the site itself: ``static/vendor/`` plus page rewrites.

    Rewrites the pages changed since ``since_ns`` (the build that just ran) and the index, or
    every page when packages were copied in (a new site, new pins, assets fetched after the
    pages were built). Idempotent. Logs one warning line when anything stays remote.
    """
    site = Path(site)
    manifest = manifest or load_manifest()
    done = Localized(site)
    if not (site / "index.html").exists():
        return done
    available, done.missing, copied = _sync_vendor(site, Path(assets or assets_dir()), manifest)
    images_dir = site / "static" / "images"
    site_images = {p.name for p in images_dir.iterdir()} if images_dir.is_dir() else set()
    unmapped: set[str] = set()
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site)
        if rel.parts[: len(VENDOR)] == VENDOR:
            continue
        try:
            if not copied and since_ns is not None and rel != Path("index.html"):
                if page.stat().st_mtime_ns < since_ns:
                    continue
            text = page.read_text(encoding="utf-8")
        except FileNotFoundError:  # removed while we walked (GX cleaning its site)
            continue
        new, remote = localize_page(text, len(rel.parts) - 1, manifest, available, site_images)
        unmapped.update(remote)
        if new != text:
            write_text_atomic(page, new)
            done.pages_rewritten += 1
    done.unmapped = sorted(unmapped)
    if done.missing or done.unmapped:
        unknown = [u for u in done.unmapped if u not in manifest["pages"]]  # a GX upgrade's new URLs
        log.warning(
            "Data Docs at %s load %d URLs from the network (packages not fetched: %s; not in %s: %s); "
            "run `make docs-assets`",
            site,
            len(done.unmapped),
            ", ".join(done.missing) or "none",
            MANIFEST.name,
            ", ".join(unknown) or "none",
        )
    return done


def main(argv: list[str] | None = None) -> int:
    """``python -m include.mlops.validation.data_docs fetch [--dest D] [--from-tarballs DIR] | localize SITE``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m include.mlops.validation.data_docs", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="install the pinned packages (idempotent)")
    fetch.add_argument("--dest", type=Path, default=None, help=f"default: ${ASSETS_ENV} or .local/data-docs-assets")
    fetch.add_argument("--from-tarballs", type=Path, default=None, help="a folder of `npm pack` tarballs; no npm")
    fetch.add_argument("--npm", default="npm")
    local = sub.add_parser("localize", help="rewrite an existing site's pages to the local copies")
    local.add_argument("site", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.command == "localize":
        done = localize_site(args.site)
        print(f"{done.site}: {done.pages_rewritten} pages rewritten, {len(done.unmapped)} URLs left remote")
        return 0 if not done.unmapped else 1
    try:
        installed = fetch_assets(args.dest, tarballs=args.from_tarballs, npm=args.npm)
    except AssetsUnavailable as exc:
        # Not fatal: the pages keep their CDN links (one warning line per build) until this runs.
        print(f"WARNING: Data Docs assets not fetched ({exc}); the pages load them from CDNs until they are")
        return 0
    except AssetError as exc:
        print(f"ERROR: {exc}")
        return 1
    if installed:
        print(f"==> Data Docs assets: {len(installed)} packages installed in {args.dest or assets_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
