// synmag viewer: the newest synthetic magnetogram beside its H-alpha input,
// stepping through time with the API's previous_id / next_id links. No build step.
"use strict";

const api = "/v1/magnetograms";
const EMPTY_RECHECK_MS = 10000;  // how often an empty feed is looked at again
let current = null;  // the product shown (API "Magnetogram" object)
let emptyTimer = null;
const $ = (id) => document.getElementById(id);

class HttpError extends Error {
  constructor(status, message) { super(`${status}: ${message}`); this.status = status; }
}

async function getJSON(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).detail || msg; } catch (e) { /* not JSON */ }
    throw new HttpError(res.status, msg);
  }
  return res.json();
}

function fmt(value) {
  if (value === null || value === undefined) return "n/a";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function fillList(dl, entries) {
  dl.replaceChildren();
  for (const [key, value] of entries) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = fmt(value);
    dl.append(dt, dd);
  }
}

// The live verification metrics, in the table's order and with its labels (GET /v1/metric-table).
let liveMetrics = null;
async function metricTable() {
  if (liveMetrics === null) {
    try {
      liveMetrics = (await getJSON("/v1/metric-table")).filter((m) => m.live);
    } catch (e) {
      return [];  // the scores still show once the table can be read
    }
  }
  return liveMetrics;
}

async function showVerification(v) {
  const box = $("verification");
  box.replaceChildren();
  if (!v || v.status !== "scored") {
    const p = document.createElement("p");
    p.textContent = v && v.status ? `status: ${v.status}` : "no scores for this product";
    box.append(p);
    return;
  }
  const refs = ["model", "zero", "persistence"].filter((r) => v[r]);
  const rows = await metricTable();
  const table = document.createElement("table");
  table.id = "verification-table";
  const head = table.insertRow();
  for (const h of ["metric", ...refs]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  for (const m of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = m.unit ? `${m.label} (${m.unit})` : m.label;
    for (const r of refs) tr.insertCell().textContent = fmt(v[r][m.name]);
  }
  const src = document.createElement("p");
  const t = v.truth;
  src.textContent = `truth: ${t ? fmt(t.origin || t.source) + " " + fmt(t.obs_time || t.t_obs) : "n/a"}`;
  box.append(table, src);
}

// The uncertainty toggle: the field layer drawn on a canvas with the pixels whose
// CONFIDENCE (probability that the sign shown is right, where |B| > 20 G) is below the
// slider's value in grey. Off: the quick-look PNG, unchanged. Both layers are PNGs on the
// product's grid (GET /v1/magnetograms/{id}/layers/{field|confidence}.png).
const GREY = [150, 150, 150];
let layerPixels = null;  // {id, field: ImageData, conf: ImageData} of the product shown

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${url}`));
    img.src = url;
  });
}

function pixelsOf(img) {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, c.width, c.height);
}

function drawGreyed() {
  const canvas = $("conf-canvas");
  const threshold = Number($("conf-threshold").value);
  $("conf-value").textContent = threshold.toFixed(2);
  if (!layerPixels || !$("conf-toggle").checked) return;
  const { field, conf } = layerPixels;
  const out = new ImageData(new Uint8ClampedArray(field.data), field.width, field.height);
  const limit = threshold * 255;
  let greyed = 0;
  for (let i = 0; i < out.data.length; i += 4) {
    if (conf.data[i + 3] > 0 && conf.data[i] < limit) {
      out.data[i] = GREY[0]; out.data[i + 1] = GREY[1]; out.data[i + 2] = GREY[2];
      greyed += 1;
    }
  }
  canvas.width = out.width;
  canvas.height = out.height;
  canvas.getContext("2d").putImageData(out, 0, 0);
  canvas.dataset.greyed = String(greyed);
  canvas.dataset.threshold = threshold.toFixed(2);
  canvas.dataset.productId = String(layerPixels.id);
}

async function showUncertainty() {
  const p = current;
  const on = $("conf-toggle").checked && p && p.layers && p.layers.confidence;
  $("product-img").hidden = Boolean(on);
  $("conf-canvas").hidden = !on;
  if (!on) return;
  if (!layerPixels || layerPixels.id !== p.id) {
    try {
      const [field, conf] = await Promise.all([loadImage(p.layers.field), loadImage(p.layers.confidence)]);
      if (current !== p) return;  // the user moved on meanwhile
      layerPixels = { id: p.id, field: pixelsOf(field), conf: pixelsOf(conf) };
    } catch (err) {
      $("conf-note").textContent = err.message;
      return;
    }
  }
  drawGreyed();
}

function setUncertaintyControls(p) {
  const has = Boolean(p.layers && p.layers.confidence);
  $("conf-toggle").disabled = !has;
  $("conf-threshold").disabled = !has;
  $("conf-note").textContent = has ? "" : "no uncertainty layers in this product";
  if (!has) $("conf-toggle").checked = false;
  showUncertainty();
}

function show(p) {
  current = p;
  clearTimeout(emptyTimer);
  $("empty").hidden = true;
  $("product").hidden = false;
  $("panels").hidden = false;
  $("obs-time").textContent = p.obs_time.replace("+00:00", "Z");
  $("product-img").src = p.png_url || "";
  $("product-img").dataset.productId = String(p.id);
  $("fits-link").href = p.fits_url;
  $("prior-line").textContent = p.prior_line || "";
  setUncertaintyControls(p);
  const input = $("input-img");
  if (p.input_png_url) { input.src = p.input_png_url; input.hidden = false; }
  else { input.removeAttribute("src"); input.hidden = true; }
  const prov = p.provenance || {};
  fillList($("provenance"), [
    ["product id", p.id], ["observed", p.obs_time], ["site", prov.site],
    ["input file", prov.input_file], ["input sha256", prov.input_sha256],
    ["model", prov.model_version], ["model sha256", prov.model_sha256],
    ["model kind", prov.model_kind === "nowcast" ? "nowcast (H-alpha and the last real magnetogram)"
      : prov.model_kind === "halpha" ? "H-alpha only" : prov.model_kind],
    ["prior", prov.prior ? `${prov.prior.source} ${prov.prior.obs_time}, ${fmt(prov.prior.age_h)} h old` : prov.prior_note],
    ["prior sha256", prov.prior ? prov.prior.sha256 : null],
    ["preprocess", prov.preprocess_version],
    ["polarity", prov.polarity_sign === -1 ? "model output negated (Hale's law of this cycle)"
      : prov.polarity_sign === 1 ? "model output as is" : "not recorded"],
    ["created", prov.created],
  ]);
  fillList($("quality"), Object.entries(p.quality || {}));
  showVerification(p.verification);
  $("prev").disabled = p.previous_id === null;
  $("next").disabled = p.next_id === null;
  $("status").textContent = "";
  history.replaceState(null, "", `#${p.id}`);
}

// No product to show: say what is missing (from /v1/status), hide the empty figures,
// and look again every EMPTY_RECHECK_MS until the first product arrives.
async function showEmpty(title) {
  current = null;
  $("product").hidden = true;
  $("panels").hidden = true;
  $("prev").disabled = true;
  $("next").disabled = true;
  $("obs-time").textContent = "no product";
  $("empty-title").textContent = title;
  const list = $("empty-reasons");
  list.replaceChildren();
  let reasons;
  try { reasons = (await getJSON("/v1/status")).reasons; }
  catch (err) { reasons = [`the feed's status is unavailable (${err.message})`]; }
  for (const why of reasons) {
    const li = document.createElement("li");
    li.textContent = why;
    list.append(li);
  }
  $("empty-checked").textContent = `checked ${new Date().toISOString().slice(0, 19)}Z; looking again every ${EMPTY_RECHECK_MS / 1000} s`;
  $("empty").hidden = false;
  $("status").textContent = "";
  clearTimeout(emptyTimer);
  emptyTimer = setTimeout(() => load(`${api}/latest`), EMPTY_RECHECK_MS);
}

async function load(url) {
  try { show(await getJSON(url)); }
  catch (err) {
    const latest = url === `${api}/latest`;
    if (err.status === 404 && latest) { await showEmpty("No magnetogram yet"); return; }
    $("status").textContent = `could not load: ${err.message}`;
    if (current) return;  // keep showing the product on screen
    if (!latest) { load(`${api}/latest`); return; }  // e.g. a stale #id: the newest instead
    $("obs-time").textContent = "unavailable";
    clearTimeout(emptyTimer);
    emptyTimer = setTimeout(() => load(`${api}/latest`), EMPTY_RECHECK_MS);
  }
}

function init() {
  $("prev").addEventListener("click", () => current && current.previous_id !== null && load(`${api}/${current.previous_id}`));
  $("next").addEventListener("click", () => current && current.next_id !== null && load(`${api}/${current.next_id}`));
  $("latest").addEventListener("click", () => load(`${api}/latest`));
  $("conf-toggle").addEventListener("change", showUncertainty);
  $("conf-threshold").addEventListener("input", drawGreyed);
  const wanted = /^#(\d+)$/.exec(location.hash);
  load(wanted ? `${api}/${wanted[1]}` : `${api}/latest`);
  // Follow the feed while the newest product is on screen.
  setInterval(async () => {
    if (!current || current.next_id !== null || document.hidden) return;
    try {
      const newest = await getJSON(`${api}/latest`);
      if (newest.id !== current.id) show(newest);
    } catch (e) { /* keep showing the current product */ }
  }, 60000);
}

document.addEventListener("DOMContentLoaded", init);
