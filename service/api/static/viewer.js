// synmag viewer: the newest synthetic magnetogram beside its H-alpha input,
// stepping through time with the API's previous_id / next_id links. No build step.
"use strict";

const api = "/v1/magnetograms";
let current = null;  // the product shown (API "Magnetogram" object)
const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).detail || msg; } catch (e) { /* not JSON */ }
    throw new Error(`${res.status}: ${msg}`);
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

function showVerification(v) {
  const box = $("verification");
  box.replaceChildren();
  if (!v || v.status !== "scored") {
    const p = document.createElement("p");
    p.textContent = v && v.status ? `status: ${v.status}` : "no scores for this product";
    box.append(p);
    return;
  }
  const refs = ["model", "zero", "persistence"].filter((r) => v[r]);
  const rows = ["psnr", "ssim", "r", "r_bin8", "ppa_10", "tumf_ratio", "netflux_ratio"];
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
    tr.insertCell().textContent = m;
    for (const r of refs) tr.insertCell().textContent = fmt(v[r][m]);
  }
  const src = document.createElement("p");
  src.textContent = `truth: ${v.truth ? fmt(v.truth.source) + " " + fmt(v.truth.t_obs) : "n/a"}`;
  box.append(table, src);
}

function show(p) {
  current = p;
  $("obs-time").textContent = p.obs_time.replace("+00:00", "Z");
  $("product-img").src = p.png_url || "";
  $("product-img").dataset.productId = String(p.id);
  $("fits-link").href = p.fits_url;
  const input = $("input-img");
  if (p.input_png_url) { input.src = p.input_png_url; input.hidden = false; }
  else { input.removeAttribute("src"); input.hidden = true; }
  const prov = p.provenance || {};
  fillList($("provenance"), [
    ["product id", p.id], ["observed", p.obs_time], ["site", prov.site],
    ["input file", prov.input_file], ["input sha256", prov.input_sha256],
    ["model", prov.model_version], ["model sha256", prov.model_sha256],
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

async function load(url) {
  try { show(await getJSON(url)); }
  catch (err) { $("status").textContent = `could not load: ${err.message}`; }
}

function init() {
  $("prev").addEventListener("click", () => current && current.previous_id !== null && load(`${api}/${current.previous_id}`));
  $("next").addEventListener("click", () => current && current.next_id !== null && load(`${api}/${current.next_id}`));
  $("latest").addEventListener("click", () => load(`${api}/latest`));
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
