"""serving.studio: the studio page in a real headless Chromium, and its JSON API over plain HTTP.

Everything is real: the session zoo's conditional lstm and refine model, both served by
`python -m serving.server` (a subprocess on free ports); the studio in a thread of this process,
composing over gRPC; Debian's chromium driven by Selenium through Debian's chromedriver (named
explicitly: Selenium Manager never runs); MIDI files written with mido, downloads read back
with the project's readers. One server, studio and browser serve the whole module.
`STUDIO_SCREENSHOT=docs/studio.png` also saves the page there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from preprocessing.piece import InputError, Piece
from preprocessing.readers import read_file
from serving import studio as studio_cli
from serving.composer import Composition
from serving.studio import StudioServer
from serving.studio_app import MAX_HISTORY, Studio, StudioError, _joined, _tail, model_names
from serving.transports import GrpcClient, LocalModel, RestClient, _Server
from tests.conftest import (
    BASS,
    C_MAJOR_SCALE,
    MELODY,
    make_piece,
    notes_of,
    start_server,
    stop_server,
    write_midi_file,
)
from tests.zoo import run_main
from trainer import export

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
DRIVER = shutil.which("chromedriver")
MAX_STEPS = 64  # the server's --max-steps
MAX_UPLOAD = 64 * 1024  # the studio's upload cap here
STEPS = "16"
READ_TIMEOUT = 2.0  # seconds the test studio waits for a silent client
MODELS_OFFERED = ["lstm", "refine", "ghost"]  # ghost: named, but not served


# --- fixtures: a conditional model and a refine model → a server → the studio → a browser --------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("studio")


@pytest.fixture(scope="module")
def server(zoo, workdir):
    """`python -m serving.server` serving lstm (conditional) and refine, version 1 each."""
    models = workdir / "models"
    shutil.copytree(zoo("lstm", "notes", condition=True).path, models / "lstm" / "1")
    shutil.copytree(zoo("refine", "performance").path, models / "refine" / "1")
    export.write_models_config(models)
    s = start_server(models / "models.config", workdir / "server-logs",
                     "--max-steps", str(MAX_STEPS), "--poll-seconds", "5")
    yield s
    stop_server(s.proc)


def run_studio(client, **options) -> tuple[str, StudioServer]:
    """The studio on a free port in a thread of this process: its URL and server."""
    app = Studio(client, MODELS_OFFERED, max_upload=MAX_UPLOAD, **options)
    httpd = StudioServer(("127.0.0.1", 0), app, timeout=READ_TIMEOUT)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_port}", httpd


@pytest.fixture(scope="module")
def studio(server):
    """The studio's URL; it renders WAV where FluidSynth is installed."""
    url, httpd = run_studio(GrpcClient(server.grpc), audio_mode=studio_cli.audio_mode("auto"),
                            max_sessions=8)
    yield url
    httpd.shutdown()
    httpd.server_close()
    httpd.studio.close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("no chromium and chromedriver on PATH (Debian: apt-get install chromium "
                    "chromium-driver; scripts/setup.sh does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


# --- helpers ------------------------------------------------------------------------------------

def by_id(browser, name):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, name)


def until(browser, script: str, timeout: float = 60):
    """Waits until the JavaScript expression is truthy; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda d: d.execute_script("return " + script))


def open_page(browser, url: str) -> None:
    """The studio page, fresh: no session from an earlier test, models loaded."""
    browser.get(url + "/api/info")  # the same origin: its session storage is the page's
    browser.execute_script("sessionStorage.clear()")
    browser.get(url + "/")
    until(browser, "document.body.dataset.ready")


def choose(browser, select: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(by_id(browser, select)).select_by_value(value)


def type_into(browser, field: str, text: str) -> None:
    element = by_id(browser, field)
    element.clear()
    element.send_keys(text)


def press(browser, button: str) -> None:
    """Clicks a button and waits for the studio's answer (a piece, or the error line)."""
    by_id(browser, button).click()
    until(browser, "!document.body.dataset.busy")


def error_line(browser) -> str | None:
    element = by_id(browser, "error")
    return element.text if element.is_displayed() else None


def rev(browser) -> str:
    return browser.execute_script("return document.body.dataset.rev || ''")


def colored_pixels(browser) -> int:
    """Pixels of the piano-roll canvas in a section's colour (notes and section lines)."""
    return browser.execute_script("""
        const c = document.getElementById('roll');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2])
              > 80) n++;
        }
        return n;""")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def midi_piece(data: bytes) -> Piece:
    return read_file(Path("download.mid"), data=data)[0]


def download(browser) -> tuple[bytes, Piece]:
    data = fetch(by_id(browser, "download").get_attribute("href"))
    return data, midi_piece(data)


def api(url: str, path: str, body=None, data: bytes | None = None,
        headers: dict | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of the studio's API."""
    if body is not None:
        data = json.dumps(body).encode()
    headers = {"X-Studio": "1", **(headers or {})}  # as the page sends it
    request = urllib.request.Request(url + path, data=data, headers=headers,
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def raw(url: str, request: bytes, timeout: float = 10.0) -> bytes:
    """Sends raw bytes to the studio and reads until it closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def one_line_error(status: int, answer: dict, *fragments: str) -> str:
    assert 400 <= status < 600, (status, answer)
    message = answer["error"]
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- in the browser ------------------------------------------------------------------------------

def test_compose_continue_undo_and_download_in_the_browser(browser, studio, tmp_path):
    open_page(browser, studio)
    options = {o.get_attribute("value"): (o.text, o.get_attribute("disabled"))
               for o in by_id(browser, "model").find_elements("tag name", "option")}
    assert options["lstm"] == ("lstm", None)
    assert options["ghost"][0] == "ghost (unavailable)" and options["ghost"][1]
    assert "refine" not in options  # a refine model is offered under "refine with"
    choose(browser, "model", "lstm")
    assert by_id(browser, "key").is_displayed() and by_id(browser, "density").is_displayed()
    assert not by_id(browser, "form").is_displayed()  # only wgan_gp takes a form
    choose(browser, "corpus", "bwv10.7.mxl")
    type_into(browser, "steps", STEPS)
    type_into(browser, "seed", "7")
    choose(browser, "key", "Am")
    assert by_id(browser, "continue").get_attribute("disabled")
    press(browser, "compose")
    assert error_line(browser) is None and rev(browser) == "1"
    assert colored_pixels(browser) > 200
    first, piece = download(browser)
    assert len(piece) > 0 and "notes" in by_id(browser, "status").text
    player = by_id(browser, "player")
    if player.is_displayed():  # FluidSynth renders WAV on the server
        assert player.get_attribute("src").endswith("/1.wav")
        assert fetch(player.get_attribute("src"))[:4] == b"RIFF"
    else:
        assert by_id(browser, "play").is_displayed()
    sections = by_id(browser, "sections").text.splitlines()
    assert sections[0].startswith("primer") and "key Am" in sections[1]

    # live control: another key, busier, hotter; the next section continues the piece
    choose(browser, "key", "F#")
    by_id(browser, "density-auto").click()
    browser.execute_script("const d = document.getElementById('density'); d.value = 0.8; "
                           "d.dispatchEvent(new Event('input'));")
    type_into(browser, "temperature", "1.5")
    press(browser, "continue")
    assert error_line(browser) is None and rev(browser) == "2"
    second, longer = download(browser)
    assert len(longer) > len(piece) and longer.end > piece.end
    # the piece so far is kept as it was (onsets: where overlapping notes of one pitch end is
    # up to the MIDI reader)
    assert {(p, s) for p, s, _ in notes_of(piece)} <= {(p, s) for p, s, _ in notes_of(longer)}
    sections = by_id(browser, "sections").text.splitlines()
    assert len(sections) == 3 and "key F# · density 0.8" in sections[2] and "T 1.5" in sections[2]
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(tmp_path / "studio.png"))
    assert (tmp_path / "studio.png").stat().st_size > 10_000
    if os.environ.get("STUDIO_SCREENSHOT"):
        shutil.copy(tmp_path / "studio.png", REPO / os.environ["STUDIO_SCREENSHOT"])

    press(browser, "undo")
    assert rev(browser) == "1" and by_id(browser, "download").get_attribute("href").endswith(
        "/1.mid")
    assert download(browser)[0] == first
    assert by_id(browser, "undo").get_attribute("disabled")  # nothing before the first piece


def test_an_uploaded_midi_primer_is_continued_and_refined(browser, studio, tmp_path):
    primer = write_midi_file(tmp_path / "primer.mid", [MELODY, BASS])
    open_page(browser, studio)
    by_id(browser, "upload").send_keys(str(primer))
    until(browser, "document.getElementById('upload-note').textContent.includes('notes')")
    assert by_id(browser, "upload-note").text == "primer.mid: 12 notes, 8 quarter notes"
    assert by_id(browser, "primer-upload").is_selected()
    choose(browser, "refine", "refine")
    type_into(browser, "steps", STEPS)
    press(browser, "compose")
    assert error_line(browser) is None
    sid = browser.execute_script("return sessionStorage.getItem('studio-session')")
    status, state = api(studio, f"/api/state?session={sid}")
    assert status == 200 and state["primer"] == "primer.mid" and state["primer_end"] > 0
    _, piece = download(browser)
    opening = [(p, s) for p, s, _ in notes_of(read_file(primer)[0]) if s < state["primer_end"]]
    assert [(p, s) for p, s, _ in notes_of(piece) if s < state["primer_end"]] == opening
    assert len(set(piece.velocity.tolist())) > 1  # the refine model gave the notes dynamics
    assert "refined by refine" in by_id(browser, "sections").text


def test_bad_input_shows_one_line_on_the_page(browser, studio, tmp_path):
    open_page(browser, studio)
    text = tmp_path / "notes.mid"
    text.write_text("C D E F G, a text file, not MIDI\n")
    by_id(browser, "upload").send_keys(str(text))
    until(browser, "!document.getElementById('error').hidden")
    assert error_line(browser).startswith("notes.mid: not a readable MIDI file")
    choose(browser, "model", "lstm")
    by_id(browser, "primer-corpus").click()
    type_into(browser, "temperature", "-1")
    press(browser, "compose")
    assert error_line(browser) == "temperature: -1 is not in (0, 10]" and rev(browser) == ""
    type_into(browser, "temperature", "1")
    type_into(browser, "steps", str(MAX_STEPS + 1))  # the server refuses it, the studio says so
    press(browser, "compose")
    message = error_line(browser)
    assert str(MAX_STEPS) in message and "\n" not in message and rev(browser) == ""
    type_into(browser, "steps", STEPS)
    press(browser, "compose")
    assert error_line(browser) is None and rev(browser) == "1"


def test_without_fluidsynth_the_browser_plays_the_notes(browser, server):
    url, httpd = run_studio(GrpcClient(server.grpc), audio_mode="browser")
    try:
        open_page(browser, url)
        type_into(browser, "steps", STEPS)
        press(browser, "compose")
        assert error_line(browser) is None
        assert not by_id(browser, "player").is_displayed()
        play = by_id(browser, "play")
        play.click()
        assert play.text == "■ Stop"
        play.click()
        assert play.text == "▶ Play"
        status, _ = api(url, by_id(browser, "download").get_attribute("href").removeprefix(url)
                        .replace(".mid", ".wav"))
        assert status == 404
    finally:
        httpd.shutdown()
        httpd.server_close()
        httpd.studio.close()


# --- the JSON API over plain HTTP ----------------------------------------------------------------

@pytest.mark.parametrize("body, fragments", [
    ({"model": "lstm", "steps": "abc"}, ["steps: 'abc' is not a whole number"]),
    ({"model": "lstm", "temperature": -1}, ["temperature: -1 is not in (0, 10]"]),
    ({"model": "lstm", "temperature": "nan"}, ["temperature: 'nan' is not"]),
    ({"model": "lstm", "steps": 1.5}, ["steps: '1.5' is not a whole number"]),
    ({"model": "lstm", "seed": -3}, ["seed: -3 is not in [0, "]),
    ({"model": "lstm", "density": 2}, ["density: 2 is not in [0, 1]"]),
    ({"model": "lstm", "key": "H"}, ["key: 'H' is not a key"]),
    ({"model": "lstm", "steps": [1]}, ["steps: "]),
    ({"model": "nope"}, ["model: 'nope' is not one of lstm, refine, ghost"]),
    ({"model": "ghost"}, ["NOT_FOUND"]),
    ({"model": "refine"}, ["refines, it does not compose"]),
    ({"model": "lstm", "refine": "nope"}, ["refine: 'nope' is not one of"]),
    ({"model": "lstm", "primer": "corpus:nope.mxl"}, ["no chorale 'nope.mxl'"]),
    ({"model": "lstm", "primer": "upload"}, ["upload a MIDI or MusicXML file first"]),
    ({"model": "lstm", "continue": True}, ["compose a piece first"]),
    ({"model": "lstm", "continue": True, "session": "x" * 20}, ["no longer kept"]),
], ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else "")
def test_a_bad_field_is_one_line_of_json(studio, body, fragments):
    one_line_error(*api(studio, "/api/compose", body), *fragments)


def test_uploads_are_capped_and_read_like_the_data_tool(studio):
    one_line_error(*api(studio, "/api/upload?name=a.mid", data=b""), "a.mid: empty file")
    one_line_error(*api(studio, "/api/upload?name=a.txt", data=b"C D E"),
                   "a.txt: unsupported file type .txt")
    one_line_error(*api(studio, "/api/upload?name=a.mid", data=b"MThd garbage"),
                   "a.mid: not a readable MIDI file")
    status, answer = api(studio, "/api/upload?name=big.mid", data=b"MThd" * MAX_UPLOAD)
    assert status == 413 and f"at most {MAX_UPLOAD}" in answer["error"]
    # notation is read in a child process, with the readers' own checks
    abc = b"X:1\nT:scale\nM:4/4\nL:1/4\nK:C\nC D E F | G A B c |]\n"
    status, answer = api(studio, "/api/upload?name=scale.abc", data=abc)
    assert status == 200 and answer["primer"] == {"name": "scale.abc", "notes": 8,
                                                  "quarters": 8.0}
    one_line_error(*api(studio, "/api/upload?name=odd.abc",
                        data=abc.replace(b"M:4/4", b"M:1000/1")),
                   "odd.abc: unusable time signature with 1000 beats")


def test_hostile_requests_get_an_answer_and_the_studio_keeps_serving(studio):
    status, answer = api(studio, "/api/compose", data=b"{not json")
    one_line_error(status, answer, "the body is not JSON")
    one_line_error(*api(studio, "/api/compose", data=b"[1, 2]"), "a JSON object")
    one_line_error(*api(studio, "/api/compose", data=b"[" * 60_000), "not JSON")
    for path in ("/nope", "/static/../serving/studio.py", "/static/%2e%2e/studio_app.py",
                 "/static/", "/api/piece/abc/1.mid", "/api/piece/" + "x" * 20 + "/1.wav"):
        status, answer = api(studio, path)
        assert status == 404 and answer["error"], path
    one_line_error(*api(studio, "/api/undo", data=b"{}"), "compose a piece first")
    one_line_error(*api(studio, "/api/model?name=lstm&version=x"), "version: 'x'")
    one_line_error(*api(studio, "/api/info?" + "&".join(f"a{i}=1" for i in range(20))),
                   "too many query fields")
    post = b"POST /api/compose HTTP/1.1\r\nHost: x\r\nX-Studio: 1\r\n"
    huge = raw(studio, post + b"Content-Length: "
                       b"99999999999999\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 413") and b"at most" in huge
    assert raw(studio, post + b"Content-Length: -5\r\n"
                       b"\r\n").startswith(b"HTTP/1.1 400")
    assert raw(studio, post + b"Connection: close\r\n"
                       b"\r\n").startswith(b"HTTP/1.1 411")
    assert raw(studio, b"PUT / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 501")
    # another site's page can post here but cannot add the header: refused before any work
    status, answer = api(studio, "/api/compose", {"model": "lstm"}, headers={"X-Studio": ""})
    assert status == 403 and "X-Studio" in answer["error"]
    assert b"Bad request syntax" in raw(studio, b"GARBAGE\r\n\r\n")  # HTTP/0.9: no headers
    raw(studio, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 50 + b"\r\n\r\n")  # TLS
    started = time.monotonic()  # a body that never comes: dropped after the read timeout
    slow = raw(studio, post + b"Content-Length: 50\r\n\r\n{")
    assert slow.startswith(b"HTTP/1.1 408") and time.monotonic() - started < READ_TIMEOUT + 5
    status, answer = api(studio, "/api/models")
    assert status == 200 and [m["name"] for m in answer["models"]] == MODELS_OFFERED
    assert b"Composer studio" in fetch(studio + "/")


def test_the_page_and_its_files_ask_for_nothing_from_elsewhere():
    for path in (REPO / "serving" / "static").iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "@import" not in text, path


def test_rest_and_grpc_compose_the_same_piece(server):
    body = {"model": "lstm", "steps": STEPS, "seed": 5, "key": "G", "density": 0.5}
    pieces = []
    for client in (GrpcClient(server.grpc), RestClient(server.rest)):
        app = Studio(client, MODELS_OFFERED)
        try:
            pieces.append(app.compose(dict(body))["notes"])
        finally:
            app.close()
    assert pieces[0] == pieces[1] and pieces[0]


# --- the parts, without a server ----------------------------------------------------------------

NOTES_META = {"model": "lstm", "representation": "notes", "steps_per_quarter": 4, "window": 8,
              "max_duration": 32, "max_shift": 32, "chords": "split"}


def test_a_continuation_reads_the_end_of_the_piece_and_extends_it():
    # a scale, then a three-note chord; a window of 8 events
    piece = make_piece([*C_MAJOR_SCALE, *[(p, 8.0 + i, 1.0) for i, p in enumerate(
        [60, 62, 64, 65, 67])], (60, 13, 2), (64, 13, 2), (67, 13, 2)])
    tail, cut = _tail(piece, NOTES_META)
    assert cut == 8.0 and len(tail) == 8  # 5 notes + the chord's 3: 8 events
    assert notes_of(tail) == [(p, s - cut, d) for p, s, d in notes_of(piece) if s >= cut]
    # what a model would answer: the primer, then two new notes from where it ends (7.0)
    answer = make_piece([*[(p, s, d) for p, s, d in notes_of(tail)], (72, 7.0, 1.0),
                         (74, 8.0, 0.5)])
    joined, at = _joined(piece, Composition(answer, 7.0, {}, {}, NOTES_META), cut)
    assert at == 15.0
    assert notes_of(joined) == sorted(notes_of(piece) + [(72, 15.0, 1.0), (74, 16.0, 0.5)],
                                      key=lambda r: (r[1], r[0], r[2]))
    # no primer in the answer (midinet, wgan_gp): the section starts on the next bar line
    joined, at = _joined(piece, Composition(make_piece([(70, 0, 1)]), 0.0, {}, {},
                                            NOTES_META), cut)
    assert at == 16.0 and notes_of(joined)[-1] == (70, 16.0, 1.0)
    # piano roll: the last window of grid steps
    tail, cut = _tail(piece, {**NOTES_META, "representation": "pianoroll"})
    assert cut == 13.0 and notes_of(tail) == [(60, 0.0, 2.0), (64, 0.0, 2.0), (67, 0.0, 2.0)]


def test_sessions_and_their_history_are_bounded():
    app = Studio(None, ["lstm"], max_sessions=2)
    try:
        data = write_midi_file(Path(app.folder.name) / "p.mid", [MELODY]).read_bytes()
        sids = [app.upload(None, "p.mid", data)["session"] for _ in range(3)]
        assert len(set(sids)) == 3
        with pytest.raises(StudioError, match="no longer kept"):
            app.session(sids[0])
        assert app.session(sids[2]).primer_name == "p.mid"
        session = app.session(sids[1])
        piece = make_piece(C_MAJOR_SCALE)
        for _ in range(MAX_HISTORY + 3):
            session.push(piece, 0.0, [], NOTES_META)
        assert len(session.history) == MAX_HISTORY
        with pytest.raises(StudioError, match="no piece 1 in this session"):
            session.state(1)
        with pytest.raises(InputError, match="compose a piece first"):
            app.session("")
    finally:
        app.close()


class GatedServer(_Server):
    """A zoo model behind the clients' interface, whose `generate` waits for `gate`."""

    address = "in process"

    def __init__(self, path: Path):
        self.local, self.gate, self.waiting = LocalModel(path), threading.Event(), \
            threading.Event()

    def predict(self, model, signature, inputs, version=None, label=""):
        if signature == "generate":
            self.waiting.set()
            assert self.gate.wait(60)
        return self.local.call(signature, inputs)


def test_a_session_answers_while_it_composes_and_a_stale_continuation_is_refused(zoo):
    server = GatedServer(zoo("lstm", "notes").path)
    app = Studio(server, ["m"], audio_mode="browser")
    try:
        server.gate.set()
        sid = app.compose({"model": "m", "steps": 8})["session"]
        assert app.compose({"model": "m", "steps": 8, "session": sid, "continue": True})["rev"] == 2
        server.gate.clear()
        server.waiting.clear()
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(app.compose, {"model": "m", "steps": 8, "session": sid,
                                              "continue": True})
            assert server.waiting.wait(60)  # composing now
            with pytest.raises(StudioError, match="composing a section") as busy:
                app.compose({"model": "m", "steps": 8, "session": sid, "continue": True})
            assert busy.value.code == 409  # one section at a time per session
            began = time.monotonic()
            assert app.current(sid)["rev"] == 2  # the session is not locked by the model call
            assert app.undo({"session": sid})["rev"] == 1
            assert time.monotonic() - began < 5
            server.gate.set()
            with pytest.raises(StudioError, match="changed while this section was composed") \
                    as info:
                later.result()
        assert info.value.code == 409
        assert app.current(sid)["rev"] == 1  # nothing pushed on top of the undone piece
    finally:
        server.gate.set()
        app.close()


def test_model_names_come_from_the_flag_or_the_config(tmp_path):
    assert model_names(" a, b,a ", None) == ["a", "b"]
    config = tmp_path / "models.config"
    config.write_text('model_config_list {\n  # config { name: "old" }\n  config {\n'
                      '    name: "lstm"\n    base_path: "/models/lstm"\n  }\n  config { '
                      'name: "refine" base_path: "/models/refine" }\n}\n')
    assert model_names(None, config) == ["lstm", "refine"]
    with pytest.raises(InputError, match="--model-config: cannot read .*--models a,b"):
        model_names(None, tmp_path / "missing.config")
    config.write_text("model_config_list {}")
    with pytest.raises(InputError, match="no models to offer"):
        model_names(None, config)


def test_help_and_a_bad_start_are_clear(tmp_path):
    rc, out, _ = run_main(studio_cli.main, ["--help"])
    assert rc == 0
    for flag in ("--server", "--rest", "--models", "--model-config", "--port", "--host",
                 "--audio", "--max-upload-bytes"):
        assert flag in out
    assert "TF Serving has no call that lists its models" in out
    rc, _, err = run_main(studio_cli.main, ["--model-config", tmp_path / "none.config",
                                            "--rest", "http://127.0.0.1:9"])
    assert rc == 2 and err.startswith("error: --model-config: cannot read")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_studio_imports_neither_trainer_nor_tensorflow(tmp_path):
    code = ("import sys; import serving.studio; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('trainer', 'tensorflow')]; "
            "print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_command_serves_the_page_over_rest(server, tmp_path):
    """`python -m serving.studio --rest URL --models ... --port 0` as a user starts it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.studio", "--rest", server.rest, "--models", "lstm",
         "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        line = proc.stdout.readline()
        assert line.startswith("studio: open http://127.0.0.1:"), proc.stderr.read()
        url = line.split()[2].rstrip("/")
        assert b"Composer studio" in fetch(url + "/")
        status, answer = api(url, "/api/models")
        assert status == 200 and answer["models"][0]["versions"] == [1]
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0  # SIGTERM stops it cleanly
