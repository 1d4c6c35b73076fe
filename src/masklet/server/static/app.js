// The masklet annotation page: plain ES modules over the server's API (no build step).
import { decodeRle, encodeRle } from "./rle.js";

const $ = (sel) => document.querySelector(sel);
const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4"];
const colorOf = (objId) => COLORS[objId % COLORS.length];
const canEditMasks = () => state.user.role !== "reviewer";
const ANNOTATION_FPS = 6;

const state = {
  user: null, status: null, project: null, video: null, stride: 1, frame: 0, phase: 3, tool: "click",
  lanes: [], selected: null, masks: new Map(), image: null, job: null, undo: new Map(), redo: new Map(),
};

// ------------------------------------------------------------------------------------- API
class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) { init.headers["content-type"] = "application/json"; init.body = JSON.stringify(body); }
  const r = await fetch(url, init);
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (r.status === 401 && url !== "/api/login") { showLogin(); }
  if (!r.ok) throw new ApiError(r.status, (data && (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))) || r.statusText);
  return data;
}

function say(text, warn = false) {
  const m = $("#message");
  m.textContent = text;
  m.className = warn ? "warn" : "";
}

function show(view) {
  for (const id of ["login-view", "projects-view", "project-view", "video-view"]) $("#" + id).hidden = id !== view;
}

// ----------------------------------------------------------------------------------- login
function showLogin() {
  state.user = null;
  $("#who").textContent = "";
  $("#logout").hidden = true;
  show("login-view");
}

async function start() {
  state.status = await api("GET", "/api/status");
  const banner = $("#banner");
  if (!state.status.model_assistance) { banner.textContent = state.status.message; banner.hidden = false; }
  else if (state.status.random_weights) { banner.textContent = `${state.status.model} with random weights: masks mean nothing`; banner.hidden = false; }
  try { state.user = await api("GET", "/api/me"); } catch { return; }
  loggedIn();
}

function loggedIn() {
  $("#who").textContent = `${state.user.name} (${state.user.role})`;
  $("#logout").hidden = false;
  for (const el of document.querySelectorAll(".admin-only")) el.hidden = state.user.role !== "admin";
  showProjects();
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    const r = await api("POST", "/api/login", { name: form.get("name"), password: form.get("password") });
    state.user = r.user;
    $("#login-error").textContent = "";
    loggedIn();
  } catch (err) { $("#login-error").textContent = err.message; }
});

$("#logout").addEventListener("click", async () => { await api("POST", "/api/logout"); showLogin(); });

// -------------------------------------------------------------------------------- projects
async function showProjects() {
  show("projects-view");
  const list = $("#project-list");
  list.replaceChildren();
  for (const s of await api("GET", "/api/projects")) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.textContent = `${s.project.name}`;
    a.dataset.project = s.project.id;
    a.addEventListener("click", () => openProject(s.project));
    li.append(a, ` — ${s.videos} videos, ${s.masklets} masklets (${s.by_status.accepted} accepted, ${s.by_status.in_review} in review)`);
    list.append(li);
  }
}

$("#new-project").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = new FormData(ev.target).get("name");
  try { const p = await api("POST", "/api/projects", { name }); ev.target.reset(); openProject(p); }
  catch (err) { alert(err.message); }
});

async function openProject(project) {
  state.project = project;
  show("project-view");
  $("#project-name").textContent = project.name;
  const list = $("#video-list");
  list.replaceChildren();
  for (const v of await api("GET", `/api/projects/${project.id}/videos`)) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.textContent = v.name;
    a.dataset.video = v.id;
    a.addEventListener("click", () => openVideo(v));
    li.append(a, ` — ${v.width}×${v.height}, ${v.frame_count} frames at ${v.fps} fps`);
    list.append(li);
  }
  for (const a of document.querySelectorAll("#exports a")) a.href = `/api/projects/${project.id}/export?format=${a.dataset.format}`;
  renderEffort(await api("GET", `/api/projects/${project.id}/effort`));
}

function renderEffort(effort) {
  const table = $("#effort");
  table.replaceChildren();
  const phases = effort.phases || [];
  if (!phases.length) return;
  const rows = [["", ...phases.map((p) => `Phase ${p.phase}`)]];
  const fmt = (v, pct) => (v === null || v === undefined) ? "-" : pct ? `${Math.round(100 * v)}%` : (typeof v === "number" ? (Number.isInteger(v) ? `${v}` : v.toFixed(1)) : `${v}`);
  rows.push(["masklets", ...phases.map((p) => fmt(p.masklets))]);
  rows.push(["annotated frames", ...phases.map((p) => fmt(p.annotated_frames))]);
  rows.push(["time per frame (s)", ...phases.map((p) => fmt(p.time_per_frame_s))]);
  rows.push(["edited frames", ...phases.map((p) => fmt(p.edited_share, true))]);
  rows.push(["clicks per clicked frame", ...phases.map((p) => fmt(p.clicks_per_clicked_frame))]);
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const cell of row) { const td = document.createElement("td"); td.textContent = cell; tr.append(td); }
    table.append(tr);
  }
}

$("#new-video").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const path = new FormData(ev.target).get("path");
  try { await api("POST", `/api/projects/${state.project.id}/videos`, { path }); ev.target.reset(); openProject(state.project); }
  catch (err) { alert(err.message); }
});
$("#upload-video").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = ev.target.elements.file.files[0];
  const button = ev.target.querySelector("button");
  button.disabled = true;
  try {
    const r = await fetch(`/api/projects/${state.project.id}/videos/upload?name=${encodeURIComponent(file.name)}`,
      { method: "POST", credentials: "same-origin", headers: { "content-type": "application/octet-stream" }, body: file });
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).detail || r.statusText);
    ev.target.reset();
    openProject(state.project);
  } catch (err) { alert(`upload refused: ${err.message}`); }
  finally { button.disabled = false; }
});
$("#back-to-projects").addEventListener("click", (ev) => { ev.preventDefault(); showProjects(); });
$("#back-to-project").addEventListener("click", (ev) => { ev.preventDefault(); openProject(state.project); });

// ---------------------------------------------------------------------------------- video
async function openVideo(video) {
  state.video = video;
  state.stride = Math.max(1, Math.round(video.fps / ANNOTATION_FPS));
  show("video-view");
  $("#video-name").textContent = video.name;
  const canvas = $("#frame");
  canvas.width = video.width;
  canvas.height = video.height;
  const scrub = $("#scrubber");
  scrub.max = video.frame_count - 1;
  scrub.step = state.stride;
  setRoleTools();
  await loadLanes();
  if (state.lanes.length && state.selected === null) state.selected = state.lanes[0].masklet.id;
  await goTo(0);
}

function setRoleTools() {
  const canEdit = canEditMasks();
  const canReview = state.user.role !== "annotator";
  $("#tools").hidden = !canEdit;
  $("#add-object").hidden = !canEdit;
  $("#submit-review").hidden = !canEdit;
  for (const id of ["#accept", "#reject", "#reject-reason"]) $(id).hidden = !canReview;
  const propagation = canEdit && state.phase !== 1 && state.status.model_assistance;
  $("#propagate-fwd").hidden = $("#propagate-back").hidden = !propagation;
  const assisted = state.status.model_assistance;
  for (const b of document.querySelectorAll("#tools button")) {
    if (b.dataset.tool === "click" || b.dataset.tool === "box") b.disabled = !assisted;
  }
  if (!assisted && (state.tool === "click" || state.tool === "box")) setTool("brush");
  else setTool(state.tool);
}

async function loadLanes() {
  state.lanes = await api("GET", `/api/projects/${state.project.id}/videos/${state.video.id}/timeline`);
  renderObjects();
  renderTimeline();
}

async function goTo(frame) {
  const f = Math.max(0, Math.min(state.video.frame_count - 1, frame - (frame % state.stride)));
  state.frame = f;
  $("#scrubber").value = f;
  $("#frame-label").textContent = `frame ${f} / ${state.video.frame_count - 1}`;
  const img = new Image();
  img.src = `/api/videos/${state.video.id}/frames/${f}.jpg`;
  await img.decode();
  state.image = img;
  await loadMasks();
  renderTimeline();
}

async function loadMasks() {
  const rows = await api("GET", `/api/projects/${state.project.id}/videos/${state.video.id}/frames/${state.frame}/masks`);
  state.masks = new Map(rows.map((m) => [m.masklet_id, { mask: decodeRle(m.rle), version: m.version, source: m.source }]));
  draw();
}

function laneOf(masklet_id) { return state.lanes.find((l) => l.masklet.id === masklet_id); }

function draw(preview) {
  const canvas = $("#frame");
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  if (state.image) ctx.drawImage(state.image, 0, 0, w, h);
  const pixels = ctx.getImageData(0, 0, w, h);
  for (const [id, entry] of state.masks) {
    const lane = laneOf(id);
    if (!lane) continue;
    const [r, g, b] = hexRgb(colorOf(lane.masklet.obj_id));
    const alpha = id === state.selected ? 0.55 : 0.35;
    const mask = preview && id === state.selected ? preview : entry.mask;
    for (let i = 0; i < mask.length; i += 1) {
      if (!mask[i]) continue;
      const o = 4 * i;
      pixels.data[o] = pixels.data[o] * (1 - alpha) + r * alpha;
      pixels.data[o + 1] = pixels.data[o + 1] * (1 - alpha) + g * alpha;
      pixels.data[o + 2] = pixels.data[o + 2] * (1 - alpha) + b * alpha;
    }
  }
  if (preview && !state.masks.has(state.selected)) {
    const [r, g, b] = hexRgb(colorOf(laneOf(state.selected).masklet.obj_id));
    for (let i = 0; i < preview.length; i += 1) if (preview[i]) { const o = 4 * i; pixels.data[o] = r; pixels.data[o + 1] = g; pixels.data[o + 2] = b; }
  }
  ctx.putImageData(pixels, 0, 0);
}

function hexRgb(hex) { return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)); }

function renderObjects() {
  const list = $("#objects");
  list.replaceChildren();
  state.lanes.forEach((lane, k) => {
    const m = lane.masklet;
    const li = document.createElement("li");
    li.dataset.masklet = m.id;
    li.className = m.id === state.selected ? "selected" : "";
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = colorOf(m.obj_id);
    li.append(sw, `${k + 1}. ${m.name || "object " + m.obj_id}${m.category ? " · " + m.category : ""} · ${m.status}`);
    li.addEventListener("click", () => selectObject(m.id));
    list.append(li);
  });
  const editor = $("#object-editor");
  const lane = state.selected === null ? null : laneOf(state.selected);
  editor.hidden = !lane || !canEditMasks();
  if (lane) { editor.elements.name.value = lane.masklet.name || ""; editor.elements.category.value = lane.masklet.category || ""; }
}

async function describeObject(ev) {
  ev.preventDefault();
  const m = laneOf(state.selected).masklet;
  const form = ev.target;
  const text = (name) => form.elements[name].value.trim() || null;
  try {
    await api("PATCH", `/api/projects/${state.project.id}/masklets/${m.id}`, { version: m.version, name: text("name"), category: text("category") });
    await loadLanes();
    say("object saved");
  } catch (err) {
    if (err.status === 409) { await loadLanes(); say("someone changed this object meanwhile: reloaded, try again", true); }
    else say(err.message, true);
  }
}

async function deleteObject() {
  const m = laneOf(state.selected).masklet;
  const frames = Object.keys(laneOf(state.selected).sources).length;
  if (!confirm(`Delete ${m.name || "object " + m.obj_id} and its masks on ${frames} frames?`)) return;
  try {
    await api("DELETE", `/api/projects/${state.project.id}/masklets/${m.id}?version=${m.version}`);
    state.selected = null;
    await loadLanes();
    await loadMasks();
    say("object deleted");
  } catch (err) {
    if (err.status === 409) { await loadLanes(); say("this object changed meanwhile: reloaded, nothing deleted", true); }
    else say(err.message, true);
  }
}

function selectObject(id) { state.selected = id; renderObjects(); draw(); }

function renderTimeline() {
  const root = $("#timeline");
  root.replaceChildren();
  for (const lane of state.lanes) {
    const row = document.createElement("div");
    row.className = "lane";
    row.dataset.masklet = lane.masklet.id;
    for (let f = 0; f < state.video.frame_count; f += state.stride) {
      const cell = document.createElement("span");
      const source = lane.sources[f];
      if (source) { cell.style.background = colorOf(lane.masklet.obj_id); cell.classList.add(source === "propagated" || source === "auto" ? "propagated" : "edited"); cell.dataset.source = source; }
      if (f === state.frame) cell.classList.add("current");
      cell.title = `frame ${f}${source ? ": " + source : ""}`;
      cell.addEventListener("click", () => goTo(f));
      row.append(cell);
    }
    root.append(row);
  }
}

$("#scrubber").addEventListener("change", (ev) => goTo(Number(ev.target.value)));
$("#phase").addEventListener("change", (ev) => { state.phase = Number(ev.target.value); setRoleTools(); });

$("#add-object").addEventListener("click", addObject);
$("#object-editor").addEventListener("submit", describeObject);
$("#delete-object").addEventListener("click", deleteObject);
async function addObject() {
  try {
    const m = await api("POST", `/api/projects/${state.project.id}/videos/${state.video.id}/masklets`, {});
    state.selected = m.id;
    await loadLanes();
    draw();
  } catch (err) { say(err.message, true); }
}

// ---------------------------------------------------------------------------------- tools
function setTool(tool) {
  state.tool = tool;
  for (const b of document.querySelectorAll("#tools button")) b.classList.toggle("active", b.dataset.tool === tool);
  state.polygon = [];
}
for (const b of document.querySelectorAll("#tools button")) b.addEventListener("click", () => setTool(b.dataset.tool));

function videoPoint(ev) {
  const canvas = $("#frame");
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}

function requireObject() {
  if (state.selected === null) { say("add an object first (N)", true); return false; }
  return true;
}

let drag = null;
const canvas = $("#frame");
canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
canvas.addEventListener("mousedown", (ev) => {
  if (state.user.role === "reviewer" || !requireObject()) return;
  const p = videoPoint(ev);
  if (state.tool === "click") { prompt({ points: [p], labels: [ev.shiftKey || ev.button === 2 ? 0 : 1] }); return; }
  if (state.tool === "box") { drag = { start: p }; return; }
  if (state.tool === "brush" || state.tool === "eraser") {
    const current = state.masks.get(state.selected);
    drag = { mask: current ? current.mask.slice() : new Uint8Array(canvas.width * canvas.height), value: state.tool === "brush" ? 1 : 0 };
    paint(drag, p);
  }
});
canvas.addEventListener("mousemove", (ev) => {
  if (drag && drag.mask) paint(drag, videoPoint(ev));
});
canvas.addEventListener("mouseup", (ev) => {
  const d = drag;
  drag = null;
  if (!d) return;
  if (d.start) {
    const [x0, y0] = d.start, [x1, y1] = videoPoint(ev);
    prompt({ box: [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)] });
  } else if (d.mask) {
    saveDrawn(d.mask);
  }
});
canvas.addEventListener("click", (ev) => {
  if (state.tool !== "polygon" || state.user.role === "reviewer" || !requireObject()) return;
  state.polygon.push(videoPoint(ev));
});
canvas.addEventListener("dblclick", () => {
  if (state.tool !== "polygon" || state.polygon.length < 3) return;
  const off = new OffscreenCanvas(canvas.width, canvas.height);
  const ctx = off.getContext("2d");
  ctx.beginPath();
  state.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath();
  ctx.fill();
  const filled = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const current = state.masks.get(state.selected);
  const mask = current ? current.mask.slice() : new Uint8Array(canvas.width * canvas.height);
  for (let i = 0; i < mask.length; i += 1) if (filled[4 * i + 3] > 127) mask[i] = 1;
  state.polygon = [];
  saveDrawn(mask);
});

function paint(d, [cx, cy]) {
  const r = Number($("#brush-size").value);
  const { width: w, height: h } = canvas;
  for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(h - 1, Math.ceil(cy + r)); y += 1) {
    for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(w - 1, Math.ceil(cx + r)); x += 1) {
      if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) d.mask[y * w + x] = d.value;
    }
  }
  draw(d.mask);
}

function remember(stack, masklet, frame, entry) {
  const key = `${masklet}:${frame}`;
  if (!stack.has(key)) stack.set(key, []);
  stack.get(key).push(entry ? entry.mask.slice() : null);
}

async function prompt(body) {
  const before = state.masks.get(state.selected);
  try {
    const saved = await api("POST", `/api/projects/${state.project.id}/masklets/${state.selected}/prompts`, { frame: state.frame, phase: state.phase, ...body });
    remember(state.undo, state.selected, state.frame, before);
    state.redo.delete(`${state.selected}:${state.frame}`);
    state.masks.set(state.selected, { mask: decodeRle(saved.rle), version: saved.version, source: saved.source });
    await loadLanes();
    draw();
    say(`frame ${state.frame}: mask saved (version ${saved.version})`);
  } catch (err) { await conflictOr(err); }
}

async function putMask(mask) {
  const current = state.masks.get(state.selected);
  const url = `/api/projects/${state.project.id}/masklets/${state.selected}/masks/${state.frame}`;
  if (mask === null) {
    if (current) await api("DELETE", `${url}?expected_version=${current.version}`);
    state.masks.delete(state.selected);
    return null;
  }
  const saved = await api("PUT", url, { rle: encodeRle(mask, canvas.height, canvas.width), expected_version: current ? current.version : null, phase: state.phase });
  state.masks.set(state.selected, { mask, version: saved.version, source: saved.source });
  return saved;
}

async function saveDrawn(mask) {
  const before = state.masks.get(state.selected);
  try {
    const saved = await putMask(mask);
    remember(state.undo, state.selected, state.frame, before);
    state.redo.delete(`${state.selected}:${state.frame}`);
    await loadLanes();
    draw();
    say(`frame ${state.frame}: drawn mask saved (version ${saved.version})`);
  } catch (err) { await conflictOr(err); }
}

async function conflictOr(err) {
  if (err.status === 409 && err.message.includes("being propagated")) {
    say(`${err.message}: the masks change under the job until it ends`, true);
  } else if (err.status === 409) {
    await loadMasks();
    await loadLanes();
    say(`someone else saved this frame meanwhile: it was reloaded, nothing of yours was saved (${err.message})`, true);
  } else {
    say(err.message, true);
    draw();
  }
}

async function undoRedo(from, to) {
  const key = `${state.selected}:${state.frame}`;
  const stack = from.get(key);
  if (!stack || !stack.length) { say("nothing to undo or redo on this frame"); return; }
  const previous = stack.pop();
  const current = state.masks.get(state.selected);
  try {
    await putMask(previous);
    remember(to, state.selected, state.frame, current);
    await loadLanes();
    draw();
  } catch (err) { stack.push(previous); await conflictOr(err); }
}
$("#undo").addEventListener("click", () => undoRedo(state.undo, state.redo));
$("#redo").addEventListener("click", () => undoRedo(state.redo, state.undo));

// ---------------------------------------------------------------------------- propagation
async function propagate(reverse) {
  if (!requireObject()) return;
  try {
    const job = await api("POST", `/api/projects/${state.project.id}/masklets/${state.selected}/propagate`, { phase: state.phase, start: state.frame, reverse });
    watch(job);
  } catch (err) { say(err.message, true); }
}
$("#propagate-fwd").addEventListener("click", () => propagate(false));
$("#propagate-back").addEventListener("click", () => propagate(true));

function watch(job) {
  state.job = job;
  const bar = $("#job-progress");
  bar.hidden = $("#job-cancel").hidden = false;
  bar.max = Math.max(1, job.frames_total);
  const events = new EventSource(`/api/projects/${state.project.id}/jobs/${job.id}/events`);
  events.addEventListener("job", async (ev) => {
    const j = JSON.parse(ev.data);
    bar.value = j.frames_done;
    say(`propagating: ${j.frames_done} / ${j.frames_total} frames (${j.status})`);
    await loadLanes();
    if (["done", "failed", "cancelled", "interrupted"].includes(j.status)) {
      events.close();
      bar.hidden = $("#job-cancel").hidden = true;
      state.job = null;
      await loadMasks();
      say(j.status === "done" ? `propagated ${j.frames_done} frames` : `propagation ${j.status}${j.error ? ": " + j.error : ""}`, j.status !== "done");
    }
  });
}
$("#job-cancel").addEventListener("click", async () => {
  if (state.job) await api("POST", `/api/projects/${state.project.id}/jobs/${state.job.id}/cancel`);
});

// --------------------------------------------------------------------------------- review
async function review(action) {
  if (!requireObject()) return;
  const reason = $("#reject-reason").value || null;
  try {
    const m = await api("POST", `/api/projects/${state.project.id}/masklets/${state.selected}/review`, { action, reason });
    await loadLanes();
    say(`masklet ${m.id}: ${m.status}`);
  } catch (err) { say(err.message, true); }
}
$("#submit-review").addEventListener("click", () => review("submit"));
$("#accept").addEventListener("click", () => review("accept"));
$("#reject").addEventListener("click", () => review("reject"));

// ------------------------------------------------------------------------------ shortcuts
$("#help-button").addEventListener("click", () => $("#help").showModal());
document.addEventListener("keydown", (ev) => {
  if ($("#video-view").hidden || ev.target.matches("input, select, textarea") || $("#help").open) return;
  const key = ev.key;
  if ((ev.ctrlKey || ev.metaKey) && key.toLowerCase() === "z") { ev.preventDefault(); undoRedo(state.undo, state.redo); return; }
  if ((ev.ctrlKey || ev.metaKey) && key.toLowerCase() === "y") { ev.preventDefault(); undoRedo(state.redo, state.undo); return; }
  const tools = { c: "click", b: "box", r: "brush", e: "eraser", p: "polygon" };
  if (tools[key.toLowerCase()]) setTool(tools[key.toLowerCase()]);
  else if (key === "ArrowRight") goTo(state.frame + state.stride);
  else if (key === "ArrowLeft") goTo(state.frame - state.stride);
  else if (key.toLowerCase() === "n") addObject();
  else if (key === "Enter") propagate(ev.shiftKey);
  else if (key === "?") $("#help").showModal();
  else if (/^[1-9]$/.test(key) && state.lanes[Number(key) - 1]) selectObject(state.lanes[Number(key) - 1].masklet.id);
});

start();
