"""`python -m serving.studio`: a studio page in the browser for models TF Serving (or
`python -m serving.server`) serves: pick a model, a primer and settings, compose, see the
piano roll, listen, download the MIDI, and compose on section by section with undo.

    python -m serving.studio --server 127.0.0.1:8500 --model-config saved_models/models.config
    python -m serving.studio --rest http://127.0.0.1:8501 --models lstm,refine --port 8080

Then open http://127.0.0.1:8080/. The studio composes through `serving.composer.Composer`
over gRPC (`--server`) or REST (`--rest`), as `serving.client` does.

Which models: TF Serving has no call that lists its models, so the studio takes their names from
`--models a,b`, or else from the model config file the server was started with
(`--model-config`, default saved_models/models.config: the `name:` of each entry). It asks the
server for each one's versions (GetModelStatus) and its `metadata` signature, which says what
the model takes: conditional models get key and density, wgan_gp a form, and models whose
representation is `performance` are offered as "refine with" instead of composing.

State: each browser tab holds a session id; the studio keeps, per session, the uploaded primer
and the last pieces composed (the undo history), for at most --max-sessions sessions (the least
recently used one is forgotten first). Uploads are capped (--max-upload-bytes) and read with the
data tool's readers and limits; notation (MusicXML, ABC, Humdrum) in a child process with a time
limit. Audio: WAV through FluidSynth where it is installed (--audio), else the page plays the
notes with Web Audio. It binds 127.0.0.1 unless --host says otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from preprocessing import audio
from preprocessing.piece import InputError
from serving.errors import ComposerError
from serving.quiet import quiet_tensorflow
from serving.rest import JsonHandler, RestServer
from serving.studio_app import Studio, StudioError, field_number, model_names
from serving.transports import GrpcClient, RestClient

log = logging.getLogger("studio")
STATIC = Path(__file__).with_name("static")
KINDS = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# nothing from elsewhere: the page runs offline
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
       "connect-src 'self'; frame-ancestors 'none'")
MAX_JSON_BYTES = 64 * 1024
CSRF_HEADER = "X-Studio"  # every POST carries it: other sites cannot make the browser send it


class StudioServer(RestServer):
    """The local server's REST server (a thread per connection, at most `max_connections`,
    then 503 at once) with the studio's handler."""

    def __init__(self, address, studio: Studio, max_connections: int = 32,
                 timeout: float = 30.0):
        self.studio = studio
        super().__init__(address, make_handler(studio, timeout), max_connections)


def make_handler(studio: Studio, timeout: float = 30.0):
    """The studio's request handler: static files, the JSON API, MIDI and WAV files."""
    statics = {p.name: p for p in STATIC.iterdir() if p.suffix in KINDS} \
        if STATIC.is_dir() else {}

    class Handler(JsonHandler):
        server_version = "ComposerStudio"
        read_timeout, log_name = timeout, "studio"
        headers_sent = {"Cache-Control": "no-store", "Content-Security-Policy": CSP,
                        "X-Content-Type-Options": "nosniff"}

        def _guard(self, method):
            try:
                method()
            except StudioError as exc:
                self._json(exc.code, {"error": str(exc)})
            except (InputError, ComposerError) as exc:
                self._json(400, {"error": " ".join(str(exc).split())[:500]})
            except TimeoutError:
                self.close_connection = True
                self._json(408, {"error": f"no request body within {timeout:g} s"})
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception as exc:  # a bug: one line to the page, the traceback to the log
                log.exception("studio: %s %s", self.command, self.path[:200])
                self._json(500, {"error": "internal error: " + " ".join(
                    f"{type(exc).__name__}: {exc}".split())[:300]})

        def do_GET(self):
            if self.headers.get("Content-Length", "0") != "0" or \
                    self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # a body is left unread
            self._guard(self._get)

        def do_POST(self):
            self._guard(self._post)

        def _query(self) -> tuple[str, dict]:
            url = urlsplit(self.path)
            try:
                query = parse_qs(url.query, max_num_fields=8)
            except ValueError:
                raise StudioError(400, "too many query fields") from None
            return url.path, {k: v[0] for k, v in query.items()}

        def _get(self):
            path, query = self._query()
            if path in ("/", "/index.html"):
                path = "/static/index.html"
            name = path.removeprefix("/static/")
            if path.startswith("/static/") and name in statics:
                file = statics[name]
                self._reply(200, file.read_bytes(), KINDS[file.suffix])
            elif path == "/api/info":
                self._json(200, studio.info())
            elif path == "/api/models":
                self._json(200, {"models": studio.model_list()})
            elif path == "/api/model":
                version = field_number(query, "version", int, 1, 2**63 - 1, None)
                self._json(200, studio.model(query.get("name", ""), version))
            elif path == "/api/state":
                self._json(200, studio.current(query.get("session")))
            elif match := re.fullmatch(r"/api/piece/([A-Za-z0-9_-]{1,64})/(\d{1,9})\.(mid|wav)",
                                       path):
                sid, rev, kind = match.groups()
                data = studio.file(sid, int(rev), kind)
                self._reply(200, data, "audio/midi" if kind == "mid" else "audio/wav",
                            {"Content-Disposition": f'attachment; filename="studio-{rev}.{kind}"'}
                            if kind == "mid" else None)
            else:
                raise StudioError(404, f"no such page {path[:100]}")

        def _body(self, limit: int) -> bytes:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise StudioError(411, "send the body with a Content-Length")
            length = self.headers.get("Content-Length")
            if length is None:
                self.close_connection = True
                raise StudioError(411, "send the body with a Content-Length")
            if not (length.isascii() and length.isdigit() and len(length) < 20):
                self.close_connection = True
                raise StudioError(400, f"bad Content-Length {length[:40]!r}")
            if int(length) > limit:
                self.close_connection = True  # the body is left unread
                raise StudioError(413, f"too large: {int(length)} bytes (at most {limit})")
            return self.rfile.read(int(length))

        def _post(self):
            path, query = self._query()
            if self.headers.get(CSRF_HEADER) != "1":
                # a page on another site can post a form or text here, but not with a custom
                # header (the browser asks first, and the studio allows no other origin)
                self.close_connection = True  # its body is left unread
                raise StudioError(403, f"send the header {CSRF_HEADER}: 1 (the page does)")
            if path == "/api/upload":
                data = self._body(studio.max_upload)
                self._json(200, studio.upload(query.get("session"), query.get("name", ""),
                                              data))
                return
            if path not in ("/api/compose", "/api/undo"):
                self.close_connection = True  # its body is left unread
                raise StudioError(404, f"no such action {path[:100]}")
            try:
                body = json.loads(self._body(MAX_JSON_BYTES))
            except (ValueError, RecursionError):
                raise StudioError(400, "the body is not JSON") from None
            if not isinstance(body, dict):
                raise StudioError(400, "the body is a JSON object")
            self._json(200, studio.compose(body) if path == "/api/compose"
                       else studio.undo(body))

    return Handler


def audio_mode(choice: str) -> str:
    """How the page plays pieces: "wav" (FluidSynth here) or "browser" (Web Audio)."""
    if choice == "browser":
        return "browser"
    try:
        audio.find_soundfont()
        found = shutil.which("fluidsynth") is not None
    except audio.AudioUnavailable:
        found = False
    if choice == "fluidsynth" and not found:
        raise InputError("--audio fluidsynth: install fluidsynth and fluid-soundfont-gm "
                         "(scripts/setup.sh does it)")
    return "wav" if found else "browser"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.studio", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8500",
                        help="the model server's gRPC host:port (default %(default)s)")
    parser.add_argument("--rest", metavar="URL", help="use its REST API instead: "
                        "http://HOST:8501")
    parser.add_argument("--models", metavar="A,B", help="the served models to offer "
                        "(default: the names in --model-config)")
    parser.add_argument("--model-config", default="saved_models/models.config",
                        help="the server's model config file, read for model names "
                        "(default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default "
                        "%(default)s: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port of the page "
                        "(default %(default)s; 0: any free one)")
    parser.add_argument("--audio", choices=("auto", "fluidsynth", "browser"), default="auto",
                        help="render WAV with FluidSynth, or let the browser synthesize "
                        "(default: FluidSynth where installed)")
    parser.add_argument("--max-upload-bytes", type=int, default=2**20,
                        help="cap on an uploaded primer (default 1 MiB)")
    parser.add_argument("--max-sessions", type=int, default=32,
                        help="pieces (browser tabs) kept with their undo history")
    parser.add_argument("--max-steps", type=int, default=2000, help="cap on steps per section")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request to "
                        "the model server")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ logs")
    parser.add_argument("--max-connections", type=int, default=32,
                        help="open connections (a thread each); past it 503 at once "
                        "(default %(default)s)")
    args = parser.parse_args(argv)
    try:
        names = model_names(args.models, args.model_config)
        mode = audio_mode(args.audio)
        if args.rest:
            client = RestClient(args.rest, args.timeout)
        else:
            quiet_tensorflow(args.verbose)  # gRPC requests are made with TensorFlow's protos
            client = GrpcClient(args.server, args.timeout)
        studio = Studio(client, names, mode, max(1, args.max_upload_bytes),
                        max(1, args.max_sessions), max(1, args.max_steps))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        httpd = StudioServer((args.host, args.port), studio, max(1, args.max_connections))
    except OSError as exc:
        studio.close()
        print(f"error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # SIGTERM stops it as Ctrl+C does: rendered audio files are removed on the way out
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    print(f"studio: open http://{args.host}:{httpd.server_port}/ in a browser (models at "
          f"{client.address}: {', '.join(names)}; Ctrl+C stops)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        studio.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
