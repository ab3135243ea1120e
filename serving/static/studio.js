// The studio page: talks to the studio's JSON API (serving/studio.py), draws the piano roll on a
// canvas and plays the piece (the server's WAV, or Web Audio where the server has no FluidSynth).
"use strict";

const $ = (id) => document.getElementById(id);
const KEYS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];
const COLORS = ["#3d5afe", "#e65100", "#2e7d32", "#8e24aa", "#00838f", "#c62828", "#6d4c41",
                "#ad1457"];
const PRIMER = "#7a869a";
const UNITS = {notes: "notes", pianoroll: "grid steps", bars: "bars"};

const studio = {
  info: null, models: {}, meta: null, piece: null, busy: false, uploadNote: "",
  session: sessionStorage.getItem("studio-session") || "",
};

async function api(path, options) {
  let response;
  try {
    // the studio refuses a POST without it: other sites cannot send it
    const headers = {...((options && options.headers) || {}), "X-Studio": "1"};
    response = await fetch(path, {...options, headers});
  } catch (err) {
    throw new Error("the studio does not answer: is `python -m serving.studio` running?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON: said below */ }
  if (!response.ok || body === null) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function showError(err) {
  const line = String((err && err.message) || err).split("\n")[0];
  $("error").textContent = line;
  $("error").title = line;
  $("error").hidden = false;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

function setStatus(text, busy = false) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy);
}

function remember(session) {
  if (session && session !== studio.session) {
    studio.session = session;
    sessionStorage.setItem("studio-session", session);
  }
}

// --- models and controls ------------------------------------------------------------------

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text;
  select.appendChild(o);
  return o;
}

async function loadModels() {
  const {models} = await api("/api/models");
  const select = $("model"), refine = $("refine");
  select.textContent = ""; refine.length = 1;
  for (const m of models) {
    studio.models[m.name] = m;
    if (m.kind === "refine") { option(refine, m.name, m.name); continue; }
    const o = option(select, m.name, m.error ? `${m.name} (unavailable)` : m.name);
    o.disabled = Boolean(m.error);
  }
  $("refine-box").classList.toggle("hidden", refine.length < 2);
  const first = [...select.options].find((o) => !o.disabled);
  if (first) { select.value = first.value; } else { showError("no model can be reached: " +
      (models.map((m) => `${m.name}: ${m.error || "refines only"}`).join("; ") || "none")); }
  modelChosen();
}

function modelChosen() {
  const m = studio.models[$("model").value];
  const version = $("version");
  version.length = 1;
  if (!m || m.error) { studio.meta = null; controls(); return; }
  for (const v of m.versions) option(version, v, `version ${v}`);
  studio.meta = m;
  controls();
}

async function versionChosen() {
  const name = $("model").value, v = $("version").value;
  try {
    const m = await api(`/api/model?name=${encodeURIComponent(name)}` +
                        (v ? `&version=${encodeURIComponent(v)}` : ""));
    if (m.error) throw new Error(m.error);
    studio.meta = m;
    clearError();
  } catch (err) { showError(err); }
  controls();
}

function controls() {
  const m = studio.meta;
  const inputs = new Set(m ? m.inputs : []);
  for (const name of ["top_k", "threshold", "key", "density", "form"]) {
    for (const el of document.querySelectorAll(`.for-${name}`)) {
      el.classList.toggle("hidden", !inputs.has(name));
    }
  }
  const primed = inputs.has("primer") || inputs.has("chords");
  $("primer-box").classList.toggle("hidden", Boolean(m) && !primed);
  if (m) {
    const meta = m.metadata, rep = meta.representation;
    $("steps-unit").textContent = UNITS[rep] || "steps";
    $("steps").max = Math.min(meta.max_steps || 2000, studio.info.max_steps);
    $("model-about").textContent = `${meta.model} · ${rep} · reads ${meta.window} ` +
      `${UNITS[rep] || "steps"}` + (meta.conditional ? " · follows key and density" : "") +
      (m.versions && m.versions.length ? ` · versions ${m.versions.join(", ")}` : "");
  } else {
    $("model-about").textContent = "";
  }
  buttons();
}

function buttons() {
  const ready = Boolean(studio.meta) && !studio.busy;
  $("compose").disabled = !ready;
  $("continue").disabled = !ready || !studio.piece;
  $("undo").disabled = studio.busy || !studio.piece || !studio.piece.can_undo;
}

function settings() {
  const auto = $("density-auto").checked;
  const source = document.querySelector("input[name=primer]:checked").value;
  return {
    session: studio.session, model: $("model").value, version: $("version").value,
    primer: source === "upload" ? "upload" : `corpus:${$("corpus").value}`,
    steps: $("steps").value, temperature: $("temperature").value, top_k: $("top-k").value,
    threshold: $("threshold").value, seed: $("seed").value, key: $("key").value,
    density: auto ? null : $("density").value, form: $("form").value,
    refine: $("refine").value,
  };
}

async function act(path, body, doing) {
  if (studio.busy) return;
  studio.busy = true; buttons(); clearError();
  document.body.dataset.busy = "1";
  setStatus(doing, true);
  try {
    const piece = await api(path, {method: "POST", body: JSON.stringify(body),
                                   headers: {"Content-Type": "application/json"}});
    remember(piece.session);
    show(piece);
  } catch (err) {
    showError(err);
    setStatus(studio.piece ? summary(studio.piece) : "Nothing composed yet.");
  } finally {
    studio.busy = false; buttons();
    delete document.body.dataset.busy;
  }
}

async function upload() {
  const file = $("upload").files[0];
  if (!file) return;
  clearError();
  $("primer-upload").checked = true;
  if (file.size > studio.info.max_upload) {
    showError(`${file.name}: too large (${file.size} bytes; at most ${studio.info.max_upload})`);
    return;
  }
  $("upload-note").textContent = `reading ${file.name}…`;
  try {
    const answer = await api(`/api/upload?session=${encodeURIComponent(studio.session)}` +
                             `&name=${encodeURIComponent(file.name)}`,
                             {method: "POST", body: file});
    remember(answer.session);
    const p = answer.primer;
    $("upload-note").textContent = `${p.name}: ${p.notes} notes, ${p.quarters} quarter notes`;
  } catch (err) {
    $("upload-note").textContent = studio.uploadNote;
    $("upload").value = "";
    showError(err);
  }
}

// --- the piece ----------------------------------------------------------------------------

function summary(p) {
  const sections = p.sections.filter((s) => !s.primer).length;
  return `${p.notes.length} notes · ${Math.ceil(p.end / 4)} bars · ` +
    `${sections} section${sections === 1 ? "" : "s"}` + (p.primer ? ` · primer ${p.primer}` : "");
}

function show(p) {
  studio.piece = p;
  document.body.dataset.rev = p.rev;
  setStatus(summary(p));
  draw(p);
  $("listen").hidden = false;
  $("download").href = p.midi;
  $("download").download = `studio-${p.rev}.mid`;
  stopSynth();
  const player = $("player");
  if (p.wav) {
    player.hidden = false; $("play").hidden = true;
    player.src = p.wav;
  } else {
    player.hidden = true; $("play").hidden = false;
  }
  const list = $("sections");
  list.textContent = "";
  p.sections.forEach((s, i) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = sectionColor(p, i);
    li.appendChild(swatch);
    const first = Math.floor(s.start / 4) + 1, last = Math.max(first, Math.ceil(s.end / 4));
    li.appendChild(document.createTextNode(
      `${s.label}: ${first === last ? `bar ${first}` : `bars ${first}–${last}`}`));
    list.appendChild(li);
  });
  buttons();
}

function sectionColor(p, i) {
  const s = p.sections[i];
  if (s.primer) return PRIMER;
  const offset = p.sections[0] && p.sections[0].primer ? 1 : 0;
  return COLORS[(i - offset) % COLORS.length];
}

function sectionOf(p, start) {
  let found = 0;
  p.sections.forEach((s, i) => { if (start >= s.start - 1e-6) found = i; });
  return found;
}

function draw(p) {
  const canvas = $("roll"), box = $("roll-box");
  const end = Math.max(p.end, 1);
  const width = Math.max(box.clientWidth - 2, Math.min(12000, end * 4));
  const height = 320, left = 38, bottom = 22;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio; canvas.height = height * ratio;
  canvas.style.width = width + "px"; canvas.style.height = height + "px";
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.fillStyle = "#fcfcfe"; g.fillRect(0, 0, width, height);
  const pitches = p.notes.map((n) => n[0]);
  const low = Math.min(...pitches, 60) - 2, high = Math.max(...pitches, 72) + 2;
  const x = (t) => left + (t / end) * (width - left - 8);
  const rowH = (height - bottom - 6) / (high - low + 1);
  const y = (pitch) => 6 + (high - pitch) * rowH;
  // sections: the primer tinted, every start marked
  let lastLabel = -1e9, row = 0;
  p.sections.forEach((s, i) => {
    if (s.primer) {
      g.fillStyle = "rgba(122, 134, 154, 0.14)";
      g.fillRect(x(s.start), 0, x(s.end) - x(s.start), height - bottom);
    }
    g.strokeStyle = sectionColor(p, i); g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(x(s.start), 0); g.lineTo(x(s.start), height - bottom); g.stroke();
    g.fillStyle = sectionColor(p, i); g.font = "12px system-ui, sans-serif";
    row = x(s.start) - lastLabel < 56 ? (row + 1) % 3 : 0;  // labels close together: stacked
    lastLabel = x(s.start);
    g.fillText(s.primer ? "primer" : `§${i + (p.sections[0].primer ? 0 : 1)}`,
               x(s.start) + 4, 14 + 14 * row);
  });
  // octaves (C) and bars
  g.font = "11px system-ui, sans-serif";
  for (let pitch = Math.ceil(low / 12) * 12; pitch <= high; pitch += 12) {
    g.strokeStyle = "#e3e6ee"; g.lineWidth = 1;
    g.beginPath(); g.moveTo(left, y(pitch) + rowH); g.lineTo(width, y(pitch) + rowH); g.stroke();
    g.fillStyle = "#8a93a6"; g.fillText(`C${pitch / 12 - 1}`, 4, y(pitch) + rowH);
  }
  const every = Math.max(1, Math.ceil(end / 4 / ((width - left) / 40)));
  for (let bar = 0; bar * 4 <= end && x(bar * 4) < width - 16; bar += every) {
    g.fillStyle = "#8a93a6"; g.fillText(String(bar + 1), x(bar * 4) + 2, height - 6);
  }
  // notes, coloured by section, darker when louder
  for (const [pitch, start, duration, velocity] of p.notes) {
    g.globalAlpha = 0.45 + 0.55 * Math.min(1, velocity / 110);
    g.fillStyle = sectionColor(p, sectionOf(p, start));
    g.fillRect(x(start), y(pitch), Math.max(2, x(start + duration) - x(start) - 1),
               Math.max(3, rowH - 1));
  }
  g.globalAlpha = 1;
}

// --- Web Audio, where the server renders no WAV ---------------------------------------------

let synth = null;

function stopSynth() {
  if (synth) { synth.close(); synth = null; $("play").textContent = "▶ Play"; }
}

function playSynth() {
  if (synth) { stopSynth(); return; }
  const p = studio.piece;
  if (!p) return;
  synth = new AudioContext();
  const now = synth.currentTime + 0.1, beat = 60 / (p.qpm || 120);
  const master = synth.createGain();
  master.gain.value = 0.25;
  master.connect(synth.destination);
  for (const [pitch, start, duration, velocity] of p.notes) {
    const osc = synth.createOscillator(), gain = synth.createGain();
    const t0 = now + start * beat, t1 = t0 + Math.max(0.05, duration * beat);
    osc.type = "triangle";
    osc.frequency.value = 440 * Math.pow(2, (pitch - 69) / 12);
    gain.gain.setValueAtTime(0, t0);
    gain.gain.linearRampToValueAtTime(0.2 + 0.6 * velocity / 127, t0 + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.05, t1);
    gain.gain.linearRampToValueAtTime(0, t1 + 0.05);
    osc.connect(gain).connect(master);
    osc.start(t0); osc.stop(t1 + 0.06);
  }
  $("play").textContent = "■ Stop";
  const context = synth;
  setTimeout(() => { if (synth === context) stopSynth(); }, (p.end * beat + 1) * 1000);
}

// --- start --------------------------------------------------------------------------------

async function start() {
  for (const k of KEYS) option($("key"), k, `${k} major`);
  for (const k of KEYS) option($("key"), `${k}m`, `${k} minor`);
  $("model").addEventListener("change", () => { clearError(); modelChosen(); });
  $("version").addEventListener("change", versionChosen);
  $("upload").addEventListener("change", upload);
  $("corpus").addEventListener("change", () => { $("primer-corpus").checked = true; });
  $("temperature-slider").addEventListener("input", (e) => {
    $("temperature").value = e.target.value;
  });
  $("temperature").addEventListener("input", (e) => {
    const v = Number(e.target.value);
    if (Number.isFinite(v)) $("temperature-slider").value = v;
  });
  $("density-auto").addEventListener("change", (e) => {
    $("density").disabled = e.target.checked;
    $("density-value").textContent = e.target.checked ? "auto" : $("density").value;
  });
  $("density").addEventListener("input", (e) => { $("density-value").textContent = e.target.value; });
  $("dice").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 1e6);
  });
  $("compose").addEventListener("click", () => act("/api/compose", settings(), "Composing…"));
  $("continue").addEventListener("click", () =>
    act("/api/compose", {...settings(), continue: true}, "Composing the next section…"));
  $("undo").addEventListener("click", () =>
    act("/api/undo", {session: studio.session}, "Undoing…"));
  $("play").addEventListener("click", playSynth);
  $("player").addEventListener("error", () => {
    if (!$("player").getAttribute("src")) return;
    showError("the server could not render audio; playing in the browser instead");
    $("player").hidden = true; $("play").hidden = false;
  });
  window.addEventListener("resize", () => { if (studio.piece) draw(studio.piece); });
  try {
    studio.info = await api("/api/info");
    $("server").textContent = studio.info.server;
    for (const c of studio.info.corpus) option($("corpus"), c.id, c.title);
    studio.uploadNote = "MIDI, MusicXML, ABC or Humdrum · at most " +
      `${Math.round(studio.info.max_upload / 1024)} KiB`;
    $("upload-note").textContent = studio.uploadNote;
    await loadModels();
    if (studio.session) {
      const piece = await api(`/api/state?session=${encodeURIComponent(studio.session)}`)
        .catch(() => ({}));
      if (piece.notes) show(piece);
    }
  } catch (err) {
    showError(err);
  }
  document.body.dataset.ready = "1";
}

start();
