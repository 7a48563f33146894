// ddnsr serve: the page. Plain JS, no build step. Talks to the JSON API in ddnsr/serve/app.py.
"use strict";

const $ = (id) => document.getElementById(id);
const HEADERS = { "X-DDNSR": "1" };
const FINISHED = ["done", "failed", "cancelled"];
const state = { info: null, jobs: new Map(), local: [], shown: null, shownDegrade: null, polling: false };

// ------------------------------------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(method, url, body) {
  const response = await fetch(url, { method, headers: HEADERS, body });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function seconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${Math.ceil(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function megabytes(bytes) { return `${Math.round(bytes / 1e6)} MB`; }

function minutes(s) { return s >= 60 ? `${+(s / 60).toFixed(1)} min` : `${s} s`; }

// the kinds of job whose result is an upscale (a photo or a video), shown, downloaded and zipped
const RESULTS = ["upscale", "video"];

// ------------------------------------------------------------------------------------------ settings

async function loadInfo(selectId) {
  const info = await api("GET", "/api/info");
  state.info = info;
  const model = $("model"), deg = $("deg-model");
  const keep = selectId || model.value || info.default_model, keepDeg = deg.value;
  model.replaceChildren(); deg.replaceChildren();
  for (const m of info.models) {
    const speed = m.speed ? ` (${m.speed})` : "";
    if (m.kinds.includes("reconstruction")) model.append(el("option", { value: m.id }, m.label + speed));
    if (m.kinds.includes("degradation")) deg.append(el("option", { value: m.id }, m.label));
  }
  model.value = keep;
  if (keepDeg) deg.value = keepDeg;
  fill($("precision"), info.precisions);
  fill($("format"), info.formats);
  const l = info.limits, videos = info.video_extensions;
  $("limits").textContent = `Up to ${megabytes(l.max_upload_bytes)} per photo or video` +
    (l.max_pixels ? `, ${(l.max_pixels / 1e6).toFixed(1)} megapixels (per frame of a video)` : "") +
    (videos.length && l.max_video_seconds ? `, ${minutes(l.max_video_seconds)} of video` : "") +
    `; ${[...info.image_extensions, ...videos].join(" ")}.`;
  $("files").accept = [...info.image_extensions, ...videos].join(",");
  const v = info.video_format;
  $("video-note").textContent = videos.length
    ? `Videos are saved as ddnsr upscale saves them: ${v.container} (${v.codec}, CRF ${v.crf}; ${v.fallback} ` +
      `when ${v.container} cannot hold the source's streams), with the same frame times, audio and subtitles.`
    : "Videos need PyAV on the server (pip install 'ddnsr[video]').";
  showNote();
  showRunButton();
}

function fill(select, values) {
  if (select.options.length) return;
  for (const v of values) select.append(el("option", { value: v }, v));
}

function showNote() {
  const m = state.info.models.find((x) => x.id === $("model").value);
  if (!m) return;
  const speed = m.speed ? `Speed: ${m.speed} (${m.gmac_per_mp} GMAC per input megapixel). ` : "";
  $("model-note").textContent = speed + (m.note || (m.source === "upload" ? "A model file from disk." : ""));
}

async function uploadModel(file) {
  const form = new FormData();
  form.append("file", file);
  $("model-status").textContent = `Checking ${file.name}...`;
  try {
    const entry = await api("POST", "/api/models", form);
    await loadInfo(entry.id);
    $("model-status").textContent = `${entry.label}: added.`;
  } catch (e) {
    $("model-status").textContent = e.message;
  }
}

// -------------------------------------------------------------------------------------------- queue

async function addFiles(files) {
  for (const file of files) {
    const form = new FormData();
    form.append("image", file);
    form.append("model", $("model").value);
    form.append("precision", $("precision").value);
    form.append("format", $("format").value);
    form.append("outscale", $("outscale").value);
    try {
      const job = await api("POST", "/api/jobs", form);
      state.jobs.set(job.id, job);
    } catch (e) {
      state.local.push({ id: `local-${state.local.length}`, name: file.name, state: "failed", error: e.message });
    }
    render();
  }
  poll();
}

async function poll() {
  if (state.polling) return;
  state.polling = true;
  try {
    for (;;) {
      const data = await api("GET", "/api/jobs");
      state.jobs = new Map(data.jobs.map((j) => [j.id, j]));
      render();
      if (data.idle) break;
      await new Promise((r) => setTimeout(r, 500));
    }
  } catch (e) {
    $("queue-empty").textContent = `Lost contact with the server: ${e.message}`;
    $("queue-empty").hidden = false;
  } finally {
    state.polling = false;
  }
}

function counts(job) {
  // [done, total] in the job's unit: a video's frames, else tiles
  return job.kind === "video" ? [job.frames_done, job.frames_total] : [job.tiles_done, job.tiles_total];
}

function stateText(job) {
  if (job.state === "queued" && job.kind === "video" && job.frames_total) return `queued, ${job.frames_total} frames`;
  if (job.state === "running") {
    const [done, total] = counts(job);
    const eta = job.eta_s !== null ? `, ${seconds(job.eta_s)} left` : "";
    if (job.kind === "video") return done || total ? `frame ${done} / ${total}${eta}` : "starting...";
    if (!total) return "starting...";
    return `tile ${done}/${total}${eta}`;
  }
  if (job.state === "done") return job.seconds !== null ? `done in ${seconds(job.seconds)}` : "done";
  return job.state;
}

function jobKey(job) {
  // what changes the item's structure; progress alone only updates the text and the bar
  return JSON.stringify([job.state, job.error, job.warnings, job.id === state.shown || job.id === state.shownDegrade]);
}

function jobItem(job) {
  const li = el("li", { class: "job", "data-id": job.id });
  fillItem(li, job);
  return li;
}

function fillItem(li, job) {
  li.className = `job ${job.state}`;
  li.dataset.state = job.state;
  li.dataset.key = jobKey(job);
  if (state.shown === job.id || state.shownDegrade === job.id) li.classList.add("selected");
  const label = { degrade: `${job.name} (degradation view)`, video: `${job.name} (video)` }[job.kind] || job.name;
  li.replaceChildren(el("div", { class: "top" }, el("span", { class: "name" }, label),
    el("span", { class: "state" }, stateText(job))));
  if (job.state === "running" || job.state === "queued") li.append(el("progress", { max: 1, value: 0 }));
  if (job.error) li.append(el("p", { class: "error" }, job.error));
  for (const w of job.warnings || []) li.append(el("p", { class: "warn" }, w));
  const actions = el("div", { class: "actions" });
  if (job.state === "running" || job.state === "queued") {
    actions.append(el("button", { type: "button", class: "cancel", onclick: () => cancel(job.id) }, "Cancel"));
  }
  if (job.state === "done" && RESULTS.includes(job.kind)) {
    actions.append(job.kind === "video"
      ? el("button", { type: "button", class: "play", onclick: () => showVideo(job) }, "Play")
      : el("button", { type: "button", class: "compare", onclick: () => showCompare(job) }, "Compare"));
    actions.append(el("a", { class: "button download", href: `/api/jobs/${job.id}/result?download=1`,
      download: job.download_name }, "Download"));
  }
  if (job.state === "done" && job.kind === "degrade") {
    actions.append(el("button", { type: "button", onclick: () => showDegrade(job) }, "Show"));
  }
  if (FINISHED.includes(job.state)) {
    actions.append(el("button", { type: "button", class: "remove", title: "remove from the list",
      onclick: () => remove(job.id) }, "Remove"));
  }
  if (actions.childElementCount) li.append(actions);
  updateProgress(li, job);
}

function updateProgress(li, job) {
  li.querySelector(".state").textContent = stateText(job);
  const bar = li.querySelector("progress"), [done, total] = counts(job);
  if (bar && total) { bar.max = total; bar.value = done; }
}

function render() {
  // items are kept and updated in place, so a button is never swapped under the pointer
  const list = $("queue");
  const jobs = [...state.local, ...state.jobs.values()];
  const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const items = jobs.map((job) => {
    const li = existing.get(job.id);
    if (!li) return jobItem(job);
    if (li.dataset.key !== jobKey(job)) fillItem(li, job); else updateProgress(li, job);
    return li;
  });
  items.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
  while (list.children.length > items.length) list.lastElementChild.remove();
  $("queue-empty").hidden = jobs.length > 0;
  const anyDone = [...state.jobs.values()].some((j) => j.state === "done" && RESULTS.includes(j.kind));
  $("zip").classList.toggle("disabled", !anyDone);
  // show the first finished result by itself; later ones wait for "Compare" / "Play"
  if (state.shown === null) {
    const done = [...state.jobs.values()].find((j) => j.state === "done" && RESULTS.includes(j.kind));
    if (done) (done.kind === "video" ? showVideo : showCompare)(done);
  }
  for (const j of state.jobs.values()) {
    if (j.kind === "degrade" && j.state === "done" && state.pendingDegrade === j.id) showDegrade(j);
    if (j.kind === "degrade" && state.pendingDegrade === j.id && (j.state === "failed" || j.state === "cancelled")) {
      $("deg-status").textContent = j.error || j.state;
      state.pendingDegrade = null;
    }
  }
}

async function cancel(id) {
  try { await api("POST", `/api/jobs/${id}/cancel`); } catch (e) { /* finished meanwhile */ }
  poll();
}

async function downloadAll(event) {
  // the zip needs the page's header, so it is fetched here and handed to the browser as a blob
  event.preventDefault();
  if ($("zip").classList.contains("disabled")) return;
  try {
    const response = await fetch("/api/results.zip", { headers: HEADERS });
    if (!response.ok) {
      let data = {};
      try { data = await response.json(); } catch (e) { /* not JSON */ }
      throw new Error(data.error || `${response.status} ${response.statusText}`);
    }
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: "ddnsr-results.zip", hidden: "" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    $("queue-empty").textContent = `Download all failed: ${e.message}`;
    $("queue-empty").hidden = false;
  }
}

async function remove(id) {
  if (id.startsWith("local-")) {
    state.local = state.local.filter((j) => j.id !== id);
  } else {
    try { await api("DELETE", `/api/jobs/${id}`); } catch (e) { /* already gone */ }
    state.jobs.delete(id);
    if (state.shown === id) { state.shown = null; $("viewer").hidden = true; showPlayer(false); }
  }
  render();
}

// ------------------------------------------------------------------------------- before / after view

const view = { z: 1, x: 0, y: 0, w: 0, h: 0 };

function showPlayer(on) {
  // the viewer shows either the before / after stage (photos) or the player (videos)
  const player = $("player");
  for (const id of ["viewport", "slider"]) $(id).hidden = on;
  document.querySelector("#viewer .zoom").hidden = on;
  player.hidden = !on;
  if (!on && player.getAttribute("src")) { player.pause(); player.removeAttribute("src"); player.load(); }
}

function showVideo(job) {
  state.shown = job.id;
  const [w, h] = job.size_out;
  showPlayer(true);
  $("player").src = `/api/jobs/${job.id}/view`;
  $("viewer-title").textContent = `${job.name}: ${job.size_in[0]}x${job.size_in[1]} to ${w}x${h}, ` +
    `${job.frames_total} frames`;
  $("viewer").hidden = false;
  for (const li of document.querySelectorAll(".job")) li.classList.toggle("selected", li.dataset.id === job.id);
  render();
}

function showCompare(job) {
  state.shown = job.id;
  showPlayer(false);
  const [w, h] = job.size_out;
  view.w = w; view.h = h;
  const before = $("before"), after = $("after");
  for (const img of [before, after]) { img.style.width = `${w}px`; img.style.height = `${h}px`; }
  after.src = `/api/jobs/${job.id}/view`;
  before.src = `/api/jobs/${job.id}/before`;
  $("viewer-title").textContent = `${job.name}: ${job.size_in[0]}x${job.size_in[1]} to ${w}x${h}`;
  $("viewer").hidden = false;
  zoom("fit");
  setSlider($("slider").value);
  for (const li of document.querySelectorAll(".job")) li.classList.toggle("selected", li.dataset.id === job.id);
  render();
}

function setSlider(value) {
  const s = Number(value);
  $("before").style.clipPath = `inset(0 ${100 - s}% 0 0)`;
  $("divider").style.left = `${s}%`;
}

function applyView() {
  $("stage").style.width = `${view.w}px`;
  $("stage").style.height = `${view.h}px`;
  $("stage").style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.z})`;
  $("divider").style.borderLeftWidth = `${2 / view.z}px`;
  $("zoom-level").textContent = `${Math.round(view.z * 100)}%`;
}

function zoom(level, cx, cy) {
  const vp = $("viewport").getBoundingClientRect();
  if (level === "fit") {
    view.z = Math.min(vp.width / view.w, vp.height / view.h);
    view.x = (vp.width - view.w * view.z) / 2;
    view.y = (vp.height - view.h * view.z) / 2;
  } else {
    const z = Math.min(Math.max(Number(level), 0.05), 32);
    const px = cx === undefined ? vp.width / 2 : cx, py = cy === undefined ? vp.height / 2 : cy;
    view.x = px - (px - view.x) * (z / view.z);
    view.y = py - (py - view.y) * (z / view.z);
    view.z = z;
  }
  applyView();
}

function setupViewer() {
  const vp = $("viewport");
  $("slider").addEventListener("input", (e) => setSlider(e.target.value));
  for (const b of document.querySelectorAll("[data-zoom]")) b.addEventListener("click", () => zoom(b.dataset.zoom));
  vp.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = vp.getBoundingClientRect();
    zoom(view.z * (e.deltaY < 0 ? 1.25 : 0.8), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  let drag = null;
  vp.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX - view.x, y: e.clientY - view.y };
    vp.setPointerCapture(e.pointerId); vp.classList.add("dragging");
  });
  vp.addEventListener("pointermove", (e) => {
    if (!drag) return;
    view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; applyView();
  });
  const end = () => { drag = null; vp.classList.remove("dragging"); };
  vp.addEventListener("pointerup", end);
  vp.addEventListener("pointercancel", end);
}

// -------------------------------------------------------------------------------- degradation view

function showRunButton() {
  const m = state.info.models.find((x) => x.id === $("deg-model").value);
  $("deg-run-photos").hidden = !(m && m.run_photos);
}

async function runDegrade(useRun) {
  const form = new FormData();
  form.append("model", $("deg-model").value);
  form.append("precision", $("precision").value);
  if (useRun) {
    state.runIndex = (state.runIndex ?? -1) + 1;
    form.append("run_photos", "1"); form.append("index", String(state.runIndex));
    $("deg-run-photos").textContent = "Next pair of the run's photos";
  } else {
    const hr = $("deg-hr").files[0], lr = $("deg-lr").files[0];
    if (!hr || !lr) { $("deg-status").textContent = "Choose a clean HR photo and a real LR photo first."; return; }
    form.append("hr", hr); form.append("lr", lr);
  }
  $("deg-status").textContent = "Queued...";
  try {
    const job = await api("POST", "/api/degrade", form);
    state.pendingDegrade = job.id;
    state.jobs.set(job.id, job);
    render();
    poll();
  } catch (e) {
    $("deg-status").textContent = e.message;
  }
}

function showDegrade(job) {
  state.pendingDegrade = null;
  state.shownDegrade = job.id;
  const base = `/api/jobs/${job.id}`;
  const [w, h] = job.size_out;
  $("deg-img-hr").src = `${base}/hr`;
  $("deg-img-hr").style.width = `${w * 4}px`;
  $("deg-img-out").src = `${base}/result`;
  $("deg-img-out").style.width = `${w * 4}px`;
  const lr = $("deg-img-lr");
  lr.onload = () => { lr.style.width = `${lr.naturalWidth * 4}px`; };
  lr.src = `${base}/lr`;
  $("deg-result").hidden = false;
  $("deg-status").textContent = `${job.name}: ${job.size_in[0]}x${job.size_in[1]} to ${w}x${h} by D.`;
}

// ------------------------------------------------------------------------------------------- wiring

function setup() {
  const drop = $("drop");
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); addFiles([...e.dataTransfer.files]); });
  drop.addEventListener("click", (e) => { if (!e.target.closest("label, input")) $("files").click(); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("files").click(); } });
  $("files").addEventListener("change", (e) => { addFiles([...e.target.files]); e.target.value = ""; });
  $("model").addEventListener("change", showNote);
  $("zip").addEventListener("click", downloadAll);
  $("model-pick").addEventListener("click", () => $("model-file").click());
  $("model-file").addEventListener("change", (e) => { if (e.target.files[0]) uploadModel(e.target.files[0]); e.target.value = ""; });
  $("deg-run").addEventListener("click", () => runDegrade(false));
  $("deg-run-photos").addEventListener("click", () => runDegrade(true));
  $("deg-model").addEventListener("change", showRunButton);
  setupViewer();
  loadInfo().then(poll).catch((e) => { $("model-status").textContent = `Cannot reach the server: ${e.message}`; });
}

document.addEventListener("DOMContentLoaded", setup);
