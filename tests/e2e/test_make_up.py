"""`make up`, the README's commands verbatim, the UI in a browser, then `make down`: the production shape.

Real: PostgreSQL (Debian's package) holding Airflow's metadata and MLflow's store, an MLflow
server with basic auth and proxied artifacts, the Airflow 3 services as separate processes, the
Data Docs site; a pipeline run triggered with curl and trained with 2-rank horovodrun. The stack
lives in a temporary MLOPS_HOME; ports are the README's defaults.

Once the README's run has made a champion, two more runs go side by side: one triggered with the
official REST client (`apache-airflow-client`) on data older than the champion's (it must not move
it), one from the UI's own trigger form in Debian's chromium (Playwright), whose task links are
then followed to the Data Docs (with every host but 127.0.0.1 cut off) and to the MLflow UI.
Screenshots: .local/test-artifacts/browser/. The tests run in file order on one stack; the last
one is `make down`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, unquote, urlsplit

import airflow_client.client as airflow_client
import mlflow
import psutil
import psycopg2
import pytest
import requests
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.x_com_api import XComApi
from airflow_client.client.exceptions import ApiException
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
from playwright.sync_api import expect, sync_playwright

from devstack.datagen import write_day
from tests.conftest import ROOT
from tests.readme import readme_block

pytestmark = pytest.mark.e2e
PORTS = {
    "MLOPS_UP_AIRFLOW_PORT": 8080,
    "MLOPS_UP_MLFLOW_PORT": 5000,
    "MLOPS_UP_DOCS_PORT": 8081,
    "MLOPS_UP_PG_PORT": 5433,
}
DAG_ID = "fraud_model_pipeline"
AIRFLOW = "http://127.0.0.1:8080"
MLFLOW = "http://127.0.0.1:5000"
# A manual run on the two days before the champion's window ends: registered, never champion.
CLIENT_CONF = {"partition_date": "2026-01-02", "window_days": 2, "epochs": 2}
CHROMIUM = Path("/usr/lib/chromium/chromium")  # Debian's chromium (`make browser`)
ARTIFACTS = ROOT / ".local" / "test-artifacts" / "browser"
POLL = 2.5  # seconds between looks at a running DAG run


def busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def shell(script: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_for(state_of, run_id: str, timeout: float) -> str:
    """The run's state once it is final (or the last one seen when `timeout` runs out)."""
    deadline = time.time() + timeout
    while True:
        state = state_of(run_id)
        state = str(getattr(state, "value", state))  # the client's DagRunState, or REST's string
        if state in ("success", "failed") or time.time() > deadline:
            return state
        time.sleep(POLL)


@pytest.fixture(scope="module")
def home():
    taken = [p for p in PORTS.values() if busy(p)]
    if taken:
        message = f"ports {taken} are in use on 127.0.0.1; `make up` needs them (stop what runs there)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Under the checkout (as `make up` uses .local/): as root, PostgreSQL runs as its own user,
    # which cannot enter pytest's private temporary directories.
    home = ROOT / ".local" / f"up-test-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    for i in range(3):
        write_day(home / "lake", dt.date(2026, 1, 1) + dt.timedelta(days=i), 20000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS", "MLFLOW"))}
    env["MLOPS_HOME"] = str(home)
    yield home, env
    shell("make down", env)  # whatever happened below
    from devstack.postgres_server import LocalPostgres

    # The server's data, wherever it went (as root, a private checkout puts it in postgres's home).
    shutil.rmtree(LocalPostgres(home / "stack" / "postgres", 5433, "airflow").root, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def up(home):
    """The README's block up to `make down`, run once: the stack, and the run it triggered."""
    home, env = home
    block = readme_block("make up")
    assert block[-1] == "make down"
    started = time.time()
    out = shell("\n".join(block[:-1]), env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print(f"make up + trigger: {time.time() - started:.0f} s")
    stack = home / "stack"
    password = json.loads((stack / "airflow-passwords.json").read_text())["admin"]
    token = requests.post(f"{AIRFLOW}/auth/token", json={"username": "admin", "password": password}, timeout=10).json()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token['access_token']}"

    def run_state(run_id: str) -> str:
        return api.get(f"{AIRFLOW}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", timeout=10).json()["state"]

    return SimpleNamespace(
        home=home,
        env=env,
        block=block,
        stdout=out.stdout,
        run_id=json.loads(out.stdout.strip().splitlines()[-1])["dag_run_id"],
        credentials=dict(line.split("=", 1) for line in (stack / "stack.env").read_text().splitlines()[2:]),
        password=password,
        token=token["access_token"],
        api=api,
        run_state=run_state,
    )


@pytest.fixture(scope="module")
def champion(up):
    """The README's run has succeeded: there is a champion to keep or replace."""
    assert wait_for(up.run_state, up.run_id, 600) == "success"
    return up.run_id


@pytest.fixture(scope="module")
def airflow(up):
    """The official client, with a token from POST /auth/token."""
    with airflow_client.ApiClient(airflow_client.Configuration(host=AIRFLOW, access_token=up.token)) as client:
        yield client


@pytest.fixture(scope="module")
def client_run(champion, airflow):
    """A run triggered with the official client, left running while the browser test goes on."""
    return DagRunApi(airflow).trigger_dag_run(DAG_ID, TriggerDAGRunPostBody(logical_date=None, conf=CLIENT_CONF))


def test_make_up_readme_commands(up):
    home, env = up.home, up.env
    assert "Airflow     http://127.0.0.1:8080   user admin, password:" in up.stdout
    run_id, credentials = up.run_id, up.credentials
    assert oct((home / "stack" / "stack.env").stat().st_mode)[-3:] == "600"

    again = shell("make up", env)  # idempotent: nothing new started
    assert again.returncode == 0 and "already up" in again.stdout, again.stdout + again.stderr

    assert up.password != "admin"
    api = up.api
    assert wait_for(up.run_state, run_id, 600) == "success"

    # Airflow's record and MLflow's registry are in this stack's PostgreSQL.
    def rows(database, sql, *args):
        conn = psycopg2.connect(
            host="127.0.0.1", port=5433, user="airflow", password=credentials["POSTGRES_PASSWORD"], dbname=database
        )
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    ((state, dag_run_pk),) = rows("airflow", "SELECT state, id FROM dag_run WHERE run_id = %s", run_id)
    assert state == "success"
    ((note,),) = rows("airflow", "SELECT content FROM dag_run_note WHERE dag_run_id = %s", dag_run_pk)
    assert note.startswith("**Promoted**: champion is now v1.")
    assert ("champion",) in rows("mlflow", "SELECT alias FROM registered_model_aliases WHERE name = 'fraud-detector'")
    moves = rows("mlflow", "SELECT key FROM registered_model_tags WHERE key LIKE %s", "champion.move.%")
    assert moves == [("champion.move.000001",)]
    # MLflow refuses anonymous clients; with the stack's credentials the champion is there.
    assert requests.get(f"{MLFLOW}/api/2.0/mlflow/registered-models/search", timeout=10).status_code == 401
    os.environ.update(
        MLFLOW_TRACKING_USERNAME=credentials["MLFLOW_TRACKING_USERNAME"],
        MLFLOW_TRACKING_PASSWORD=credentials["MLFLOW_TRACKING_PASSWORD"],
    )
    try:
        champion = mlflow.MlflowClient(MLFLOW).get_model_version_by_alias("fraud-detector", "champion")
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME")
        os.environ.pop("MLFLOW_TRACKING_PASSWORD")
    assert champion.tags["airflow.run_id"] == run_id
    # The task links open real pages: the Data Docs site serves the validation's page.
    links = api.get(f"{AIRFLOW}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/validate/links").json()
    docs = links["extra_links"]["Data Docs"]
    assert docs.startswith("http://127.0.0.1:8081/validations/")
    page = requests.get(docs, timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_official_client_triggers_and_rejects_undeclared_conf(client_run, airflow):
    assert client_run.conf == CLIENT_CONF
    assert str(client_run.run_type.value) == "manual"
    runs = DagRunApi(airflow)
    before = runs.get_dag_runs(DAG_ID, run_type=["manual"]).total_entries
    with pytest.raises(ApiException) as rejected:
        runs.trigger_dag_run(DAG_ID, TriggerDAGRunPostBody(logical_date=None, conf={"no_such_param": 1}))
    assert rejected.value.status == 400
    assert "unknown run parameter 'no_such_param'" in rejected.value.body, rejected.value.body
    assert runs.get_dag_runs(DAG_ID, run_type=["manual"]).total_entries == before  # refused before anything was created


def test_browser_triggers_from_the_form_and_follows_the_task_links(up, client_run):
    """Log in, trigger with the form's defaults, see the run succeed, open its Data Docs and MLflow run."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: `make browser` installs Debian's chromium (`make test` does it)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = []
    blocked = []  # requests to any host but this machine, refused
    failed = []  # (url, status or error) of requests that did not load

    def shot(page, name):
        path = ARTIFACTS / f"{len(shots) + 1:02d}-{name}.png"
        page.screenshot(path=str(path))
        shots.append(path)
        print(f"screenshot: {path.relative_to(ROOT)}")

    def local_only(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in ("127.0.0.1", "localhost"):
            blocked.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    credentials = up.credentials
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000},
            # MLflow's basic auth, for its origin only.
            http_credentials={
                "username": credentials["MLFLOW_TRACKING_USERNAME"],
                "password": credentials["MLFLOW_TRACKING_PASSWORD"],
                "origin": MLFLOW,
            },
        )
        context.route("**/*", local_only)
        context.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
        context.on("response", lambda r: r.status >= 400 and failed.append((r.url, r.status)))
        page = context.new_page()
        try:
            # Log in with the generated password.
            page.goto(f"{AIRFLOW}/")
            page.wait_for_url(re.compile(r"/auth/login"))
            shot(page, "login")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(up.password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{AIRFLOW}/")

            # The DAG, its Trigger button, the params form with its defaults, submitted as is.
            page.goto(f"{AIRFLOW}/dags/{DAG_ID}")
            expect(page.get_by_role("heading", name=DAG_ID, exact=True)).to_be_visible()
            page.get_by_role("button", name="Trigger Dag", exact=True).click()  # aria-label of "Trigger"
            form = page.get_by_role("dialog")
            expect(form).to_contain_text(f"Trigger Dag - {DAG_ID}")
            expect(form).to_contain_text("Run Parameters")
            expect(form).to_contain_text("Training window (days)")
            shot(page, "trigger-form")
            with page.expect_response(
                lambda r: r.request.method == "POST" and urlsplit(r.url).path == f"/api/v2/dags/{DAG_ID}/dagRuns"
            ) as posted:
                form.get_by_role("button", name="Trigger", exact=True).click()
            assert posted.value.status == 200, posted.value.text()
            conf = posted.value.request.post_data_json["conf"]
            assert (conf["partition_date"], conf["window_days"], conf["epochs"], conf["patience"]) == (None, 3, 30, 3)
            run_id = posted.value.json()["dag_run_id"]
            newest = up.api.get(
                f"{AIRFLOW}/api/v2/dags/{DAG_ID}/dagRuns",
                params={"run_type": "manual", "order_by": "-run_after", "limit": 1},
                timeout=10,
            ).json()["dag_runs"][0]
            assert (newest["dag_run_id"], newest["triggered_by"]) == (run_id, "ui")

            # The UI goes to the new run's page; once the run has ended, that page shows Success.
            page.wait_for_url(lambda url: unquote(url).endswith(f"/runs/{run_id}"))
            shot(page, "run-started")
            run_page_url = page.url
            # Not left open meanwhile: the page polls and re-renders, and chromium's CPU would
            # slow the very runs it watches.
            page.goto("about:blank")
            assert wait_for(up.run_state, run_id, 900) == "success"
            page.goto(run_page_url)
            header = page.get_by_role("heading", name=run_id, exact=True).locator("xpath=..")
            expect(header.get_by_test_id("state-badge")).to_have_text("Success", timeout=30_000)
            shot(page, "run-success")

            # Each task's link, on its Details tab, as the REST API gives it; it opens a new tab.
            def follow(task, name):
                page.goto(f"{AIRFLOW}/dags/{DAG_ID}/runs/{quote(run_id)}/tasks/{task}")
                page.get_by_role("link", name="Details", exact=True).click()
                link = page.get_by_role("link", name=name, exact=True)
                expect(link).to_be_visible(timeout=20_000)  # the links render once the task's XCom has loaded
                shot(page, f"{task}-links")
                rest = up.api.get(f"{AIRFLOW}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task}/links")
                href = link.get_attribute("href")
                assert href == rest.json()["extra_links"][name]
                assert link.get_attribute("target") == "_blank"
                blocked.clear()
                failed.clear()
                with context.expect_page() as opened:
                    link.click()
                return href, opened.value

            # Data Docs, offline: every asset from the site itself, bootstrap's styles applied.
            href, docs = follow("validate", "Data Docs")
            docs.wait_for_load_state("networkidle")
            shot(docs, "data-docs")
            assert docs.url == href
            expect(docs.locator("body")).to_contain_text("Expectation Validation Result")
            expect(docs.locator("body")).to_contain_text("Succeeded")
            assert blocked == [], f"the Data Docs page needs the network: {blocked}"
            docs_failed = [f for f in failed if f[0].startswith("http://127.0.0.1:8081/")]
            assert docs_failed == [], f"the Data Docs page has assets that do not load: {docs_failed}"
            styles = docs.evaluate(
                "() => ({sheets: document.styleSheets.length, font: getComputedStyle(document.body).fontFamily,"
                " collapse: getComputedStyle(document.querySelector('table')).borderCollapse})"
            )
            assert styles["sheets"] > 0
            assert styles["font"].startswith("-apple-system"), styles  # bootstrap's font stack
            assert styles["collapse"] == "collapse", styles  # bootstrap's reboot
            docs.close()

            # The MLflow run page, through basic auth: the run, by its name.
            href, run_page = follow("train", "MLflow run")
            info = requests.get(
                f"{MLFLOW}/api/2.0/mlflow/runs/get",
                params={"run_id": href.rsplit("/", 1)[1]},
                auth=(credentials["MLFLOW_TRACKING_USERNAME"], credentials["MLFLOW_TRACKING_PASSWORD"]),
                timeout=10,
            ).json()["run"]["info"]
            expect(run_page.get_by_text(info["run_name"], exact=True).first).to_be_visible(timeout=60_000)
            expect(run_page).to_have_title(re.compile(r"MLflow"))
            assert run_page.url.startswith(f"{MLFLOW}/#/experiments/") and info["run_id"] in run_page.url
            shot(run_page, "mlflow-run")
            run_page.close()

            # The experiment's runs, in the saved view: the metrics that decide promotion are columns.
            href, runs_page = follow("train", "MLflow runs")
            assert href.endswith("/runs?viewStateShareKey=mlops-runs")
            # (the grid renders only the columns in view: the first metric one is enough)
            expect(runs_page.get_by_role("columnheader", name="holdout_pr_auc").first).to_be_visible(timeout=60_000)
            expect(runs_page.get_by_text(info["run_name"], exact=True).first).to_be_visible()
            shot(runs_page, "mlflow-runs")
        except BaseException:
            with contextlib.suppress(Exception):
                for i, p in enumerate(context.pages):
                    shot(p, f"failure-{i}")
            raise
        finally:
            print(f"requests refused (not 127.0.0.1): {blocked}")
            browser.close()
    assert all(path.stat().st_size > 0 for path in shots)


def test_official_client_run_leaves_the_champion(up, client_run, airflow):
    runs = DagRunApi(airflow)
    run_id = client_run.dag_run_id
    assert wait_for(lambda r: runs.get_dag_run(DAG_ID, r).state, run_id, 600) == "success"
    entry = XComApi(airflow).get_xcom_entry(DAG_ID, "summarize", run_id, "return_value", deserialize=True)
    summary = entry.actual_instance.value
    assert summary["run_id"] == run_id
    assert summary["partitions"] == ["2026-01-01", "2026-01-02"]
    assert summary["validation"]["success"] is True
    registry = summary["registry"]
    assert "champion" not in registry["aliases"], summary
    assert registry["champion_version"] not in (None, registry["version"]), summary
    assert summary.get("promotion", {}).get("decision") != "promoted", summary
    # The conf reached the trainer: two epochs on the two days.
    params = requests.get(
        f"{MLFLOW}/api/2.0/mlflow/runs/get",
        params={"run_id": summary["training"]["mlflow_run_id"]},
        auth=(up.credentials["MLFLOW_TRACKING_USERNAME"], up.credentials["MLFLOW_TRACKING_PASSWORD"]),
        timeout=10,
    ).json()["run"]["data"]["params"]
    params = {p["key"]: p["value"] for p in params}
    assert (params["epochs"], params["partitions"]) == ("2", "2026-01-01,2026-01-02")


def test_make_down(up):
    # Every service leads its own session; the stack is everything in those sessions.
    leaders = {int(p.read_text().split()[0]) for p in (up.home / "stack" / "pids").glob("*.pid")}
    assert len(leaders) == 6
    members = [p for p in psutil.process_iter() if _session(p.pid) in leaders]
    assert len(members) > len(leaders)  # workers, gunicorn/uvicorn children...
    down = shell(up.block[-1], up.env)
    assert down.returncode == 0 and "down: stopped " in down.stdout, down.stdout + down.stderr
    assert "postgresql" in down.stdout
    # `down` has returned; its processes may take a moment to be reaped: wait for them, not a fixed time.
    psutil.wait_procs(members, timeout=30)
    left = [p for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], "processes of the stack still running"
    assert not [port for port in PORTS.values() if busy(port)]
    assert "nothing (not running)" in shell("make down", up.env).stdout


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None
