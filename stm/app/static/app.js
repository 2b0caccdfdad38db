// stm annotate: the page. Plain JavaScript, no build step, talks only to the server that served it.
//
// The server owns every mask: a stroke is sent as a path (normalised x / W, y / H) and the server
// draws it, saves the frame's PNG and logs it; the page then shows the server's mask. So what is on
// screen is what is on disk, and a replayed log paints the same pixels.
"use strict";

const $ = (id) => document.getElementById(id);
const frameCanvas = $("frame-canvas");
const maskCanvas = $("mask-canvas");
const drawCanvas = $("draw-canvas");
const frameCtx = frameCanvas.getContext("2d");
const maskCtx = maskCanvas.getContext("2d");
const drawCtx = drawCanvas.getContext("2d");
const CACHE_FRAMES = 48;

const state = {
  info: null,
  frame: 0, // the frame asked for
  shown: -1, // the frame whose image and mask are on screen
  showToken: 0,
  object: null,
  tool: "brush",
  width: 16,
  opacity: 0.5,
  playing: false,
  job: null,
  cursor: 0,
  following: true, // during a propagation, show each frame as it finishes until the person navigates
  busy: false,
  images: new Map(),
  labels: new Map(),
  currentLabels: null,
  stroke: null,
  polygon: [],
  pointer: null,
  timings: {},
};

// ---------------------------------------------------------------------------------------------
// server

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

async function fetchOk(path) {
  const response = await fetch(path);
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error || `${path}: ${response.status} ${response.statusText}`);
  }
  return response;
}

function say(text, isError = false) {
  const message = $("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    say(error.message, true);
    return undefined;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// frames and masks

function remember(cache, key, value) {
  cache.delete(key);
  cache.set(key, value);
  while (cache.size > CACHE_FRAMES) cache.delete(cache.keys().next().value);
  return value;
}

function getImage(index) {
  if (state.images.has(index)) return remember(state.images, index, state.images.get(index));
  const pending = fetchOk(`/api/frames/${index}.jpg`)
    .then((response) => response.blob())
    .then((blob) => createImageBitmap(blob));
  pending.catch(() => state.images.delete(index));
  return remember(state.images, index, pending);
}

function getLabels(index) {
  if (state.labels.has(index)) return remember(state.labels, index, state.labels.get(index));
  const pending = fetchOk(`/api/labels/${index}`)
    .then((response) => response.arrayBuffer())
    .then((buffer) => new Uint8Array(buffer));
  pending.catch(() => state.labels.delete(index));
  return remember(state.labels, index, pending);
}

async function show(index) {
  const info = state.info;
  index = Math.max(0, Math.min(info.frames - 1, index));
  state.frame = index;
  $("slider").value = index;
  $("frame-number").textContent = `${index + 1} / ${info.frames}`;
  const token = ++state.showToken;
  try {
    const [image, labels] = await Promise.all([getImage(index), getLabels(index)]);
    if (token !== state.showToken) return;
    frameCtx.drawImage(image, 0, 0);
    state.currentLabels = labels;
    renderMask();
    state.shown = index;
    drawOverlay();
  } catch (error) {
    if (token === state.showToken) say(error.message, true);
  }
}

function davisColour(id) {
  let r = 0, g = 0, b = 0, value = id;
  for (let bit = 0; bit < 8; bit++) {
    r |= (value & 1) << (7 - bit);
    g |= ((value >> 1) & 1) << (7 - bit);
    b |= ((value >> 2) & 1) << (7 - bit);
    value >>= 3;
  }
  return [r, g, b];
}

function hexColour(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function colourTable() {
  const table = new Uint8Array(256 * 3);
  for (let id = 0; id < 256; id++) table.set(davisColour(id), id * 3);
  for (const object of state.info.objects) table.set(hexColour(object.colour), object.id * 3);
  return table;
}

let maskImage = null;

function renderMask() {
  const labels = state.currentLabels;
  const { width, height } = state.info;
  if (!labels || labels.length !== width * height) return;
  if (!maskImage) maskImage = maskCtx.createImageData(width, height);
  const pixels = maskImage.data;
  const table = colourTable();
  const fill = Math.round(255 * state.opacity);
  const edge = state.opacity > 0 ? 255 : 0;
  for (let y = 0, p = 0; y < height; y++) {
    for (let x = 0; x < width; x++, p++) {
      const id = labels[p];
      const q = p * 4;
      if (id === 0) {
        pixels[q + 3] = 0;
        continue;
      }
      const boundary =
        (x > 0 && labels[p - 1] !== id) ||
        (x < width - 1 && labels[p + 1] !== id) ||
        (y > 0 && labels[p - width] !== id) ||
        (y < height - 1 && labels[p + width] !== id);
      pixels[q] = table[id * 3];
      pixels[q + 1] = table[id * 3 + 1];
      pixels[q + 2] = table[id * 3 + 2];
      pixels[q + 3] = boundary ? edge : fill;
    }
  }
  maskCtx.putImageData(maskImage, 0, 0);
}

function fit() {
  const { width, height } = state.info;
  const box = $("stage").getBoundingClientRect();
  const scale = Math.max(0.05, Math.min(box.width / width, box.height / height));
  for (const canvas of [frameCanvas, maskCanvas, drawCanvas]) {
    canvas.style.width = `${width * scale}px`;
    canvas.style.height = `${height * scale}px`;
  }
}

// ---------------------------------------------------------------------------------------------
// the panel: objects, tools, timeline marks

function objectColour(id) {
  const object = state.info.objects.find((o) => o.id === id);
  return object ? object.colour : "#ffffff";
}

function renderObjects() {
  const list = $("objects");
  list.replaceChildren();
  const objects = state.info.objects;
  if (!objects.some((o) => o.id === state.object)) state.object = objects.length ? objects[0].id : null;
  for (const object of objects) {
    const item = document.createElement("li");
    item.dataset.id = object.id;
    item.className = object.id === state.object ? "selected" : "";
    const colour = document.createElement("input");
    colour.type = "color";
    colour.value = object.colour;
    colour.title = "Colour";
    colour.addEventListener("change", () =>
      attempt(async () => {
        await api("PATCH", `/api/objects/${object.id}`, { colour: colour.value });
        object.colour = colour.value;
        renderMask();
      }),
    );
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = object.name;
    name.title = "Double-click to rename";
    name.addEventListener("dblclick", () =>
      attempt(async () => {
        const text = window.prompt("Name of the object", object.name);
        if (!text) return;
        Object.assign(object, await api("PATCH", `/api/objects/${object.id}`, { name: text }));
        renderObjects();
      }),
    );
    const remove = document.createElement("button");
    remove.className = "delete";
    remove.textContent = "\u00d7";
    remove.title = "Delete this object from every frame";
    remove.addEventListener("click", (event) => {
      event.stopPropagation();
      deleteObject(object);
    });
    item.append(colour, name, remove);
    item.addEventListener("click", () => selectObject(object.id));
    list.append(item);
  }
}

function selectObject(id) {
  state.object = id;
  renderObjects();
  drawOverlay();
}

async function addObject() {
  await attempt(async () => {
    const object = await api("POST", "/api/objects", {});
    state.info.objects.push(object);
    selectObject(object.id);
  });
}

async function deleteObject(object) {
  if (!window.confirm(`Delete ${object.name} from every frame? This cannot be undone.`)) return;
  await attempt(async () => {
    const result = await api("DELETE", `/api/objects/${object.id}`);
    state.info.objects = state.info.objects.filter((o) => o.id !== object.id);
    for (const index of result.frames) state.labels.delete(index);
    applyEditState(result);
    renderObjects();
    await show(state.frame);
    say(`${object.name} deleted from ${result.frames.length} frames`);
  });
}

function setTool(tool) {
  if (!state.info.tools.includes(tool)) return;
  state.tool = tool;
  state.polygon = [];
  for (const button of document.querySelectorAll("#tools button")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  }
  drawOverlay();
}

function setWidth(width) {
  const slider = $("size");
  state.width = Math.max(Number(slider.min), Math.min(Number(slider.max), Math.round(width)));
  slider.value = state.width;
  $("size-value").textContent = state.width;
  drawOverlay();
}

function renderMarks() {
  const marks = $("marks");
  marks.replaceChildren();
  const last = Math.max(1, state.info.frames - 1);
  const add = (index, kind, title) => {
    const mark = document.createElement("div");
    mark.className = `mark ${kind}`;
    mark.dataset.frame = index;
    mark.title = `${title} ${index + 1}`;
    mark.style.left = `calc(var(--thumb) / 2 + (100% - var(--thumb)) * ${index / last})`;
    marks.append(mark);
  };
  for (const index of state.info.annotated) add(index, "annotated", "annotated by hand: frame");
  for (const index of state.info.scribbled) add(index, "scribbled", "scribbled: frame");
}

function applyEditState(result) {
  for (const key of ["annotated", "can_undo", "can_redo"]) {
    if (key in result) state.info[key] = result[key];
  }
  $("undo").disabled = state.busy || !state.info.can_undo;
  $("redo").disabled = state.busy || !state.info.can_redo;
  renderMarks();
}

async function refreshSession() {
  const info = await api("GET", "/api/session");
  state.info = info;
  renderObjects();
  applyEditState(info);
  return info;
}

// ---------------------------------------------------------------------------------------------
// drawing

function toNormalised(event) {
  const box = drawCanvas.getBoundingClientRect();
  return [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
}

function toPixels([x, y]) {
  return [x * state.info.width, y * state.info.height];
}

function strokeColour(tool) {
  if (tool === "eraser") return "rgba(255, 255, 255, 0.75)";
  if (tool === "positive") return "rgba(60, 220, 90, 0.95)";
  if (tool === "negative") return "rgba(240, 60, 60, 0.95)";
  return objectColour(state.object);
}

function drawPath(points, tool, close = false) {
  if (!points.length) return;
  drawCtx.save();
  drawCtx.lineCap = "round";
  drawCtx.lineJoin = "round";
  drawCtx.strokeStyle = strokeColour(tool);
  drawCtx.fillStyle = strokeColour(tool);
  if (tool === "polygon") {
    drawCtx.lineWidth = Math.max(1, state.info.width / 400);
    drawCtx.globalAlpha = 0.9;
  } else {
    drawCtx.lineWidth = state.width;
    drawCtx.globalAlpha = tool === "brush" ? 0.6 : 1;
  }
  drawCtx.beginPath();
  const [x0, y0] = toPixels(points[0]);
  drawCtx.moveTo(x0, y0);
  for (const point of points.slice(1)) drawCtx.lineTo(...toPixels(point));
  if (points.length === 1 && tool !== "polygon") drawCtx.lineTo(x0 + 0.01, y0);
  if (close) drawCtx.closePath();
  drawCtx.stroke();
  if (tool === "polygon") {
    const radius = Math.max(2, state.info.width / 250);
    for (const point of points) {
      const [x, y] = toPixels(point);
      drawCtx.beginPath();
      drawCtx.arc(x, y, radius, 0, 2 * Math.PI);
      drawCtx.fill();
    }
  }
  drawCtx.restore();
}

function drawOverlay() {
  if (!state.info) return;
  drawCtx.clearRect(0, 0, drawCanvas.width, drawCanvas.height);
  if (state.stroke) drawPath(state.stroke.points, state.stroke.tool);
  if (state.tool === "polygon" && state.polygon.length) {
    const points = state.pointer ? [...state.polygon, state.pointer] : state.polygon;
    drawPath(points, "polygon");
  }
  if (state.pointer && !state.stroke && state.tool !== "polygon") {
    const [x, y] = toPixels(state.pointer);
    drawCtx.save();
    drawCtx.strokeStyle = "rgba(255, 255, 255, 0.9)";
    drawCtx.lineWidth = Math.max(1, state.info.width / 600);
    drawCtx.beginPath();
    drawCtx.arc(x, y, Math.max(0.5, state.width / 2), 0, 2 * Math.PI);
    drawCtx.stroke();
    drawCtx.restore();
  }
}

function canEdit() {
  if (state.busy) {
    say("A propagation is running: wait for it or cancel it to edit.", true);
    return false;
  }
  if (state.object === null) {
    say("Add an object first.", true);
    return false;
  }
  return true;
}

function onPointerDown(event) {
  if (event.button !== 0 || !canEdit()) return;
  stopPlaying();
  drawCanvas.focus();
  const point = toNormalised(event);
  if (state.tool === "polygon") {
    addPolygonPoint(point);
    return;
  }
  drawCanvas.setPointerCapture(event.pointerId);
  state.stroke = { tool: state.tool, points: [point] };
  drawOverlay();
}

function onPointerMove(event) {
  const point = toNormalised(event);
  state.pointer = point;
  if (state.stroke) {
    const [px, py] = toPixels(state.stroke.points[state.stroke.points.length - 1]);
    const [x, y] = toPixels(point);
    if (Math.hypot(x - px, y - py) >= 0.75) state.stroke.points.push(point);
  }
  drawOverlay();
}

function onPointerUp() {
  const stroke = state.stroke;
  if (!stroke) return;
  sendStroke(stroke.tool, stroke.points).finally(() => {
    if (state.stroke === stroke) state.stroke = null;
    drawOverlay();
  });
}

function addPolygonPoint(point) {
  const polygon = state.polygon;
  if (polygon.length >= 3) {
    const [x0, y0] = toPixels(polygon[0]);
    const [x, y] = toPixels(point);
    const box = drawCanvas.getBoundingClientRect();
    const screenScale = box.width / state.info.width;
    if (Math.hypot(x - x0, y - y0) * screenScale < 10) {
      closePolygon();
      return;
    }
  }
  polygon.push(point);
  drawOverlay();
}

function closePolygon() {
  const points = state.polygon;
  state.polygon = [];
  if (points.length < 3) {
    if (points.length) say("A polygon needs at least three corners.", true);
    drawOverlay();
    return;
  }
  state.stroke = { tool: "polygon", points };
  sendStroke("polygon", points).finally(() => {
    state.stroke = null;
    drawOverlay();
  });
}

async function sendStroke(tool, points) {
  const frame = state.frame;
  const path = points.map(([x, y]) => [Number(x.toFixed(6)), Number(y.toFixed(6))]);
  await attempt(async () => {
    const result = await api("POST", "/api/strokes", { tool, frame, object: state.object, path, width: state.width });
    if (result.job) {
      state.timings = { clicked: performance.now() };
      startJob(result.job);
      return;
    }
    for (const index of result.frames) state.labels.delete(index);
    applyEditState(result);
    if (state.frame === frame) await show(frame);
  });
}

async function undoRedo(which) {
  if (state.busy) return;
  await attempt(async () => {
    const result = await api("POST", `/api/${which}`);
    const frame = result.frames[0];
    state.labels.delete(frame);
    applyEditState(result);
    await show(frame);
    say(`${which === "undo" ? "Undone" : "Redone"} on frame ${frame + 1}`);
  });
}

// ---------------------------------------------------------------------------------------------
// playback and navigation

function step(delta) {
  stopPlaying();
  if (state.job) state.following = false;
  show(state.frame + delta);
}

function stopPlaying() {
  state.playing = false;
  $("play").innerHTML = "&#9654;";
}

async function togglePlay() {
  if (state.playing) {
    stopPlaying();
    return;
  }
  state.playing = true;
  if (state.job) state.following = false;
  $("play").innerHTML = "&#10074;&#10074;";
  if (state.frame >= state.info.frames - 1) await show(0);
  const interval = 1000 / Math.min(30, state.info.fps || 24);
  while (state.playing) {
    const start = performance.now();
    if (state.frame >= state.info.frames - 1) break;
    getImage(Math.min(state.frame + 2, state.info.frames - 1));
    await show(state.frame + 1);
    await sleep(Math.max(0, interval - (performance.now() - start)));
  }
  stopPlaying();
}

// ---------------------------------------------------------------------------------------------
// propagation

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["propagate-forward", "propagate-backward", "export"]) $(id).disabled = busy || !canPropagate(id);
  $("cancel").disabled = !busy;
  $("undo").disabled = busy || !state.info.can_undo;
  $("redo").disabled = busy || !state.info.can_redo;
  drawCanvas.classList.toggle("busy", busy);
}

function canPropagate(id) {
  return id === "export" || state.info.propagation;
}

async function propagate(direction) {
  if (!canEdit()) return;
  stopPlaying();
  state.timings = { clicked: performance.now() };
  await attempt(async () => {
    const result = await api("POST", "/api/propagate", { frame: state.frame, direction });
    startJob(result.job);
  });
}

function startJob(id, cursor = 0) {
  state.job = id;
  state.cursor = cursor;
  state.following = true;
  setBusy(true);
  say("Working...");
  poll(id);
}

async function poll(id) {
  while (state.job === id) {
    let status;
    try {
      status = await api("GET", `/api/job?since=${state.cursor}`);
    } catch (error) {
      say(`Lost the server: ${error.message}`, true);
      await sleep(1000);
      continue;
    }
    state.cursor = status.cursor;
    for (const index of status.updated) state.labels.delete(index);
    $("progress").value = status.total ? status.done / status.total : 0;
    const rate = status.done && status.seconds ? ` \u00b7 ${(status.done / status.seconds).toFixed(1)} fps` : "";
    $("progress-text").textContent = `${status.done} / ${status.total}${rate}`;
    if (status.updated.length) {
      const last = status.updated[status.updated.length - 1];
      if (state.following) await show(last);
      else if (status.updated.includes(state.frame)) await show(state.frame);
      if (state.timings.firstShown === undefined) state.timings.firstShown = performance.now();
    }
    if (status.state !== "running") {
      await finishJob(status);
      return;
    }
    await sleep(200);
  }
}

async function finishJob(status) {
  state.job = null;
  state.timings.lastShown = performance.now();
  state.timings.server = status;
  await attempt(refreshSession);
  setBusy(false);
  if (status.state === "failed") {
    say(status.error || "failed", true);
  } else if (status.state === "cancelled") {
    say(`Cancelled: the ${status.done} frames already done are kept.`);
  } else {
    say(`Done: ${status.done} frames in ${status.seconds.toFixed(1)} s.`);
  }
}

async function cancel() {
  await attempt(async () => {
    await api("POST", "/api/cancel");
    say("Cancelling after the frame in progress...");
  });
}

async function exportAll() {
  say("Exporting...");
  await attempt(async () => {
    const links = await api("POST", "/api/export");
    const box = $("export-links");
    box.replaceChildren();
    for (const [name, href] of Object.entries(links)) {
      const link = document.createElement("a");
      link.href = href;
      link.download = name;
      link.textContent = name;
      box.append(link);
    }
    say(`Exported to ${state.info.workspace}/export`);
  });
}

// ---------------------------------------------------------------------------------------------
// keys and set-up

function onKey(event) {
  const target = event.target;
  if (target.matches && target.matches("input[type=text], textarea")) return;
  if (event.ctrlKey || event.metaKey) {
    const key = event.key.toLowerCase();
    if (key === "z" && !event.shiftKey) undoRedo("undo");
    else if (key === "y" || (key === "z" && event.shiftKey)) undoRedo("redo");
    else return;
    event.preventDefault();
    return;
  }
  switch (event.key) {
    case "ArrowLeft":
      step(-1);
      break;
    case "ArrowRight":
      step(1);
      break;
    case " ":
      togglePlay();
      break;
    case "b":
      setTool("brush");
      break;
    case "e":
      setTool("eraser");
      break;
    case "p":
      setTool("polygon");
      break;
    case "[":
      setWidth(state.width - Math.max(1, state.width * 0.15));
      break;
    case "]":
      setWidth(state.width + Math.max(1, state.width * 0.15));
      break;
    case "Enter":
      if (state.tool !== "polygon") return;
      closePolygon();
      break;
    case "Escape":
      state.polygon = [];
      drawOverlay();
      break;
    case "Backspace":
      if (state.tool !== "polygon" || !state.polygon.length) return;
      state.polygon.pop();
      drawOverlay();
      break;
    default:
      if (/^[1-9]$/.test(event.key) && state.info.objects[Number(event.key) - 1]) {
        selectObject(state.info.objects[Number(event.key) - 1].id);
        break;
      }
      return;
  }
  event.preventDefault();
}

async function start() {
  let info;
  try {
    info = await refreshSession();
  } catch (error) {
    say(`Cannot reach the server: ${error.message}`, true);
    return;
  }
  if (!info.objects.length) await addObject();
  const { width, height, frames } = info;
  document.title = `${info.video} - stm annotate`;
  $("video-name").textContent = `${info.video} \u00b7 ${frames} frames \u00b7 ${width}x${height}`;
  $("workspace-path").textContent = `Workspace: ${info.workspace}`;
  for (const canvas of [frameCanvas, maskCanvas, drawCanvas]) {
    canvas.width = width;
    canvas.height = height;
  }
  const slider = $("slider");
  slider.max = frames - 1;
  const size = $("size");
  size.max = Math.max(10, Math.round(Math.max(width, height) / 4));
  setWidth(Math.min(40, Math.max(3, Math.round(Math.max(width, height) / 40))));
  for (const button of document.querySelectorAll("#tools button")) {
    button.hidden = !info.tools.includes(button.dataset.tool);
    button.addEventListener("click", () => setTool(button.dataset.tool));
  }
  setTool("brush");
  new ResizeObserver(fit).observe($("stage"));
  fit();

  slider.addEventListener("input", () => {
    stopPlaying();
    if (state.job) state.following = false;
    show(Number(slider.value));
  });
  size.addEventListener("input", () => setWidth(Number(size.value)));
  $("opacity").addEventListener("input", (event) => {
    state.opacity = Number(event.target.value) / 100;
    renderMask();
  });
  $("play").addEventListener("click", togglePlay);
  $("add-object").addEventListener("click", addObject);
  $("undo").addEventListener("click", () => undoRedo("undo"));
  $("redo").addEventListener("click", () => undoRedo("redo"));
  $("propagate-forward").addEventListener("click", () => propagate("forward"));
  $("propagate-backward").addEventListener("click", () => propagate("backward"));
  $("cancel").addEventListener("click", cancel);
  $("export").addEventListener("click", exportAll);
  drawCanvas.addEventListener("pointerdown", onPointerDown);
  drawCanvas.addEventListener("pointermove", onPointerMove);
  drawCanvas.addEventListener("pointerup", onPointerUp);
  drawCanvas.addEventListener("pointercancel", onPointerUp);
  drawCanvas.addEventListener("pointerleave", () => {
    state.pointer = null;
    drawOverlay();
  });
  drawCanvas.addEventListener("dblclick", () => {
    if (state.tool === "polygon") closePolygon();
  });
  document.addEventListener("keydown", onKey, true);
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button");
    if (button) button.blur(); // so that space plays instead of pressing the button again
  });

  setBusy(false);
  if (!info.propagation) say("No propagation model loaded: paint masks by hand.");
  await show(0);
  if (info.job && info.job.state === "running") startJob(info.job.id, info.job.cursor);
  document.body.dataset.ready = "true";
}

window.stm = { state, show };
start();
