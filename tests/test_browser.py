"""The MLflow UI that `python -m nnlab.ui` starts, used the way a person uses it: a real headless
Chromium (the Debian packages, installed here if missing) opens the printed address, finds the
experiment and a trial run of a real search by clicking through the UI, opens the run's artifacts,
and sees the learning-curves image the search logged; a screenshot is kept in tmp_path. The UI
command then stops cleanly on SIGTERM, nothing it started is left listening or running, and it
printed nothing but its own lines, in a user's environment (issue 28; these checks of the UI's
own run even where no Chromium can be had)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from nnlab.ui import log_file
# nnlab.ui's own lines: its address, then each experiment's runs page (issue 28: no other).
from test_quiet import UI_LINES, user_environment

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    pytest.skip("selenium is not installed: pip install -e '.[dev]'", allow_module_level=True)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_PACKAGES = ["chromium", "chromium-driver"]
INSTALL_HINT = "install the Debian packages: apt-get install chromium chromium-driver"
# Without the background-networking switches Chromium's own connections fail on a closed network.
CHROMIUM_ARGUMENTS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      "--disable-quic", "--no-first-run", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--window-size=1600,1000"]
UI_START_SECONDS = 150  # nnlab.ui itself waits up to 120 s for mlflow ui to answer
STEP_SECONDS = 60  # one click's page to load and render, on two busy cores
TRIAL_RUN = "trial-0"
ARTIFACT = "plots/learning_curves.png"
ADDRESS_LINE = re.compile(r"^MLflow UI: (http://127\.0\.0\.1:\d+)\s")


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def apt_get(*arguments: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", *arguments], env=environment, capture_output=True, text=True, timeout=900,
                          check=False)


@pytest.fixture(scope="module")
def chromium() -> tuple[Path, Path]:
    """The Debian Chromium and its driver, installed with apt-get when missing (CI's fresh machine)
    and skipped, saying what to install, only where that cannot be done."""
    missing = " and ".join(str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists())
    if not missing:
        return CHROMIUM, CHROMEDRIVER
    if shutil.which("apt-get") is None:
        pytest.skip(f"no {missing}, and no apt-get to install them; {INSTALL_HINT}")
    if os.geteuid() != 0:
        pytest.skip(f"no {missing}, and apt-get needs root to install them; {INSTALL_HINT}")
    for arguments in (["update"], ["install", "-y", *APT_PACKAGES]):
        try:
            completed = apt_get(*arguments)
        except subprocess.TimeoutExpired:
            pytest.skip(f"apt-get {' '.join(arguments)} did not finish in 15 minutes; {INSTALL_HINT}")
        if completed.returncode != 0:
            pytest.skip(f"apt-get {' '.join(arguments)} failed (exit {completed.returncode}); {INSTALL_HINT}. "
                        f"apt said:\n{tail(completed.stdout + completed.stderr, 15)}")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"apt-get installed {' '.join(APT_PACKAGES)}, yet {CHROMIUM} or {CHROMEDRIVER} is still missing")
    return CHROMIUM, CHROMEDRIVER


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class UICommand:
    """`python -m nnlab.ui` as a subprocess. Its output (and that of mlflow ui under it: a log line
    per request) is read all along by a thread, so a full pipe never blocks the server."""

    def __init__(self, tracking_uri: str, port: int, workdir: Path):
        self.port = port
        self.output: list[str] = []
        self.address: str | None = None
        self._address_or_end = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nnlab.ui", "--port", str(port), "--tracking-uri", tracking_uri],
            cwd=workdir, env=user_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.output.append(line)
            match = ADDRESS_LINE.match(line)
            if match and self.address is None:
                self.address = match.group(1)
                self._address_or_end.set()
        self._address_or_end.set()

    def printed(self) -> str:
        return tail("".join(self.output))

    def wait_for_address(self, timeout: float) -> str:
        self._address_or_end.wait(timeout)
        assert self.address is not None, (
            f"nnlab.ui printed no 'MLflow UI: http://127.0.0.1:{self.port}' line within {timeout} s "
            f"(exit code {self.process.poll()}); it printed:\n{self.printed()}")
        return self.address

    def stop(self) -> int:
        """SIGTERM, as a service manager would stop it; killed only if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"nnlab.ui did not stop within 60 s of SIGTERM; it printed:\n{self.printed()}")
        # The pipe closes once every process under nnlab.ui that holds it has exited as well.
        self._reader.join(timeout=60)
        return self.process.returncode

    def all_exited(self) -> bool:
        return not self._reader.is_alive()


@pytest.fixture
def ui(searched_store, tmp_path, free_port):
    # cwd tmp_path: whatever mlflow ui writes beside itself stays out of the checkout.
    command = UICommand(searched_store.tracking_uri, free_port, tmp_path)
    yield command
    # Where the test failed before it stopped the UI: SIGTERM too, as a kill would leave the
    # mlflow server under nnlab.ui running.
    command.stop()


@pytest.fixture
def browser(chromium, tmp_path, monkeypatch):
    chromium_binary, chromedriver_binary = chromium
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium_binary)
    for argument in [*CHROMIUM_ARGUMENTS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(chromedriver_binary)), options=options)
    yield driver
    driver.quit()


def click(driver, xpath: str, what: str):
    """Click the element once it is there and takes the click. React re-renders while data arrives,
    so an element found a moment ago may be stale or covered: the wait finds it again and retries."""

    def found_and_clicked(_driver) -> bool:
        element = _driver.find_element(By.XPATH, xpath)
        if not (element.is_displayed() and element.is_enabled()):
            return False
        element.click()
        return True

    retried = (NoSuchElementException, StaleElementReferenceException, ElementClickInterceptedException,
               ElementNotInteractableException)
    WebDriverWait(driver, STEP_SECONDS, ignored_exceptions=retried).until(
        found_and_clicked, message=f"could not click {what} ({xpath}) on {driver.current_url}")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_mlflow_ui_shows_a_trial_runs_learning_curves(searched_store, ui, request, tmp_path):
    """Also what the UI says, checked here on its one start (test_quiet.py's UI test was a start of
    its own): where no Chromium can be had, those checks still run, and the test then skips."""
    client = MlflowClient(searched_store.tracking_uri)
    parent_run_name = client.get_run(searched_store.result.parent_run_id).info.run_name
    address = ui.wait_for_address(UI_START_SECONDS)
    assert address == f"http://127.0.0.1:{ui.port}"

    # nnlab.ui prints each experiment's runs table: MLflow opens on its GenAI view otherwise.
    experiment_id = client.get_experiment_by_name("mnist").experiment_id
    runs_link = f"{address}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    WebDriverWait(ui.output, 30).until(lambda lines: f"  mnist: {runs_link}\n" in lines,
                                       message=f"nnlab.ui printed no link to mnist's runs:\n{ui.printed()}")
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    for page in ("/", "/health", "/ajax-api/2.0/mlflow/experiments/search?max_results=5"):
        with urllib.request.urlopen(address + page, timeout=30) as response:
            assert response.status == 200, page

    try:
        browser = request.getfixturevalue("browser")
    except pytest.skip.Exception as skipped:  # no Chromium: the UI's own checks below still run
        no_browser = str(skipped)
    else:
        no_browser = None
        shows_a_trial_runs_learning_curves(browser, client, searched_store, runs_link, parent_run_name, tmp_path)
        shows_the_champion_with_its_test_metrics(browser, client, address, experiment_id, tmp_path)

    # Stopped as a service manager would: a clean exit, and the mlflow server under it gone too.
    assert ui.stop() == 0, f"nnlab.ui exited with {ui.process.returncode}; it printed:\n{ui.printed()}"
    assert not listening(ui.port), f"something still listens on port {ui.port} after nnlab.ui stopped"
    assert ui.all_exited(), "processes started by nnlab.ui still run (they hold its output) 60 s after it exited"
    assert "Traceback" not in "".join(ui.output), ui.printed()
    # Only nnlab's words, every page the browser loaded included: what MLflow and uvicorn said
    # went to the server's log, without a line per request.
    lines = [line.rstrip("\n") for line in ui.output]
    foreign = [line for line in lines if not UI_LINES.fullmatch(line)]
    assert not foreign and lines[0].startswith("MLflow UI: ") and len(lines) >= 2, ui.printed()
    said = log_file(searched_store.tracking_uri, ui.port).read_text()
    assert "Security middleware" in said and "GET /health" not in said, said
    if no_browser:
        pytest.skip(f"nnlab.ui checked, the browser part skipped: {no_browser}")


def shows_a_trial_runs_learning_curves(browser, client, searched_store, runs_link, parent_run_name, tmp_path):
    """The browser opens the printed link, clicks through to a trial run's learning curves and
    sees the image the search logged; a screenshot is kept in tmp_path."""
    wait = WebDriverWait(browser, STEP_SECONDS)
    screenshot = tmp_path / "mlflow-ui-trial-artifacts.png"
    browser.get(runs_link)
    try:
        # The link opens the runs table, the search's run in it.
        wait.until(expected_conditions.visibility_of_element_located(
            (By.XPATH, f"//div[@role='gridcell']//a[normalize-space()='{parent_run_name}']")),
            message=f"the link {runs_link} shows no run '{parent_run_name}'")
        # Trial runs are nested under the search's run: expand that row with its button.
        click(browser, f"//div[@role='gridcell'][.//a[normalize-space()='{parent_run_name}']]//button",
              f"the expand button of the run '{parent_run_name}'")
        click(browser, f"//a[normalize-space()='{TRIAL_RUN}']", f"the run '{TRIAL_RUN}'")
        click(browser, "//button[@role='tab'][normalize-space()='Artifacts']", "the Artifacts tab")
        click(browser, "//*[@data-testid='artifact-tree-node'][normalize-space()='plots']", "the folder 'plots'")
        click(browser, "//*[@data-testid='artifact-tree-node'][normalize-space()='learning_curves.png']",
              "the file 'learning_curves.png'")
        preview = wait.until(expected_conditions.visibility_of_element_located((By.XPATH, f"//img[@alt='{ARTIFACT}']")),
                             message=f"no preview image of {ARTIFACT}")
        wait.until(lambda _driver: _driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", preview),
            message=f"the preview of {ARTIFACT} did not load")
        shown_size = tuple(browser.execute_script(
            "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", preview))
        # The assistant panel only narrows the view: close it where this MLflow has one.
        for close in browser.find_elements(By.XPATH, "//*[@data-assistant-ui='true']//button[@aria-label='Close']"):
            close.click()
            wait.until(expected_conditions.invisibility_of_element(close))
    except TimeoutException as timeout:  # its message, without chromedriver's stack of addresses
        pytest.fail(f"{timeout.msg}; {screenshot} shows the page")
    finally:
        browser.save_screenshot(str(screenshot))  # taken on failure too: it shows where the UI stopped

    # The page reached through the clicks is the trial run of this search, and shows its image.
    run_id = re.search(r"/runs/([0-9a-f]{32})/artifacts", browser.current_url).group(1)
    run = client.get_run(run_id)
    assert run.info.run_name == TRIAL_RUN
    assert run.data.tags["mlflow.parentRunId"] == searched_store.result.parent_run_id
    logged = Path(client.download_artifacts(run_id, ARTIFACT, str(tmp_path)))
    assert shown_size == png_size(logged.read_bytes())

    screenshot_bytes = screenshot.read_bytes()
    width, height = png_size(screenshot_bytes)
    assert width >= 1000 and height >= 700 and len(screenshot_bytes) > 20_000, (width, height, len(screenshot_bytes))


def page_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def shows_the_champion_with_its_test_metrics(browser, client, address, experiment_id, tmp_path):
    """Issue 31: the experiment's Models tab lists the champion (an MLflow 3 logged model) with
    its test metrics; its own page shows them linked to the test split; the registered version's
    page shows its test score, what decided the alias, and the logged model it was made from."""
    wait = WebDriverWait(browser, STEP_SECONDS)
    version = client.get_model_version_by_alias("mnist-cnn", "champion")
    model_id = version.source.removeprefix("models:/")
    metrics = client.get_logged_model(model_id).metrics
    shown = str(next(metric.value for metric in metrics if metric.key == "test_accuracy"))[:6]
    # Wide enough for the Models table's metric columns, which render only when in view.
    browser.set_window_size(3000, 1000)
    pages = [
        ("models", f"{address}/#/experiments/{experiment_id}/models?workflowType=machine_learning",
         ["champion", "test_accuracy", shown, "mnist-test", "mnist-cnn"]),
        ("logged-model", f"{address}/#/experiments/{experiment_id}/models/{model_id}",
         ["Metrics", "test_accuracy", shown, "mnist-test", "Model versions"]),
        ("version", f"{address}/#/models/mnist-cnn/versions/{version.version}",
         ["Source Model", "champion", "test_accuracy", shown, "Tested on mnist-test"]),
    ]
    for name, link, words in pages:
        screenshot = tmp_path / f"mlflow-ui-{name}.png"
        browser.get(link)
        try:
            wait.until(lambda driver: all(word in page_text(driver) for word in words),
                       message=f"the {name} page ({link}) does not show all of {words}")
        except TimeoutException as timeout:
            pytest.fail(f"{timeout.msg}; {screenshot} shows the page")
        finally:
            browser.save_screenshot(str(screenshot))
