// docvlm viewer: the page with each result's box, and beside it what was read.
// Model output is untrusted: it only ever reaches the page as text (textContent,
// attributes set one by one), or as a table rebuilt from the parser's sanitized HTML
// through a whitelist of elements. Molecules and scores are SVG drawn by the server
// (RDKit, verovio) and shown in <img>, where no script can run.
"use strict";

const state = { info: null, id: null, doc: null, page: 0, offset: 0, suspect: null };
const $ = (id) => document.getElementById(id);

function el(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.cls) node.className = options.cls;
  if (options.text !== undefined && options.text !== null) node.textContent = String(options.text);
  for (const [name, value] of Object.entries(options.attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) if (child) node.append(child);
  return node;
}

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(await detail(response));
  return response.json();
}

async function detail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

// --- the archive list and the suspect filter ----------------------------------------

async function loadDocuments(reset = true) {
  if (reset) { state.offset = 0; $("documents").replaceChildren(); }
  const body = await getJSON(`/v1/documents?offset=${state.offset}&limit=200`);
  for (const summary of body.documents) {
    const item = el("li", { cls: `doc status-${summary.status}`, attrs: { "data-id": summary.id } }, [
      el("span", { cls: "name", text: summary.source }),
      el("span", { cls: "meta", text: `${summary.pages} p · ${summary.results} results` }),
      summary.suspects ? el("span", { cls: "badge warn", text: `${summary.suspects} suspect` }) : null,
    ]);
    item.addEventListener("click", () => go(summary.id, 1));
    $("documents").append(item);
  }
  state.offset += body.documents.length;
  $("more").hidden = state.offset >= body.total;
  $("list-title").textContent = `Documents (${body.total})`;
  return body;
}

function minConfidence() {
  const value = parseFloat($("min-confidence").value);
  return Number.isFinite(value) ? value : null;
}

async function loadSuspects() {
  const threshold = minConfidence();
  const query = threshold === null ? "" : `?min_confidence=${threshold}`;
  const found = await getJSON(`/v1/suspects${query}`);
  const list = $("suspects");
  list.replaceChildren();
  for (const s of found) {
    const where = s.page ? `p. ${s.page}${s.task ? ` · ${s.task}` : ""}` : "whole file";
    const item = el("li", { cls: `suspect reason-${s.reason}`, attrs: { "data-document": s.document, "data-page": s.page ?? "" } }, [
      el("span", { cls: "name", text: s.source }),
      el("span", { cls: "meta", text: where }),
      el("span", { cls: "badge warn", text: s.reason.replace("_", " ") }),
      s.detail ? el("span", { cls: "detail", text: s.detail }) : null,
    ]);
    item.addEventListener("click", () => go(s.document, s.page || 1, s.index));
    list.append(item);
  }
  $("list-title").textContent = `Suspect results (${found.length})`;
}

async function applyFilter() {
  const on = $("only-suspect").checked || minConfidence() !== null;
  if (typeof queue === "object" && queue.shown) {  // queue.js: the filter replaces the queue
    queue.shown = false;
    $("queue").hidden = true;
    $("tab-review").classList.remove("current");
  }
  $("documents").hidden = on;
  $("more").hidden = true;
  $("suspects").hidden = !on;
  document.body.classList.toggle("filtering", on);
  if (on) await loadSuspects(); else await loadDocuments();
  if (state.doc) drawPage();
}

// --- one document, one page ----------------------------------------------------------

function go(id, page, index) {
  location.hash = `#/documents/${id}/pages/${page}` + (index === undefined || index === null ? "" : `/results/${index}`);
}

async function route() {
  if (typeof routeQueue === "function" && await routeQueue(location.hash)) return;  // queue.js
  const match = /^#\/documents\/(\d+)\/pages\/(\d+)(?:\/results\/(\d+))?/.exec(location.hash);
  if (!match) return;
  const id = Number(match[1]);
  if (id !== state.id) {
    try {
      state.doc = await getJSON(`/v1/documents/${id}`);
    } catch (error) {
      $("empty").textContent = error.message;
      $("empty").hidden = false;
      $("document").hidden = true;
      return;
    }
    state.id = id;
  }
  const pages = state.doc.pages;
  const wanted = pages.findIndex((p) => p.number === Number(match[2]));
  state.page = Math.max(0, wanted);
  state.focus = match[3] === undefined ? null : Number(match[3]);
  for (const item of document.querySelectorAll("#documents li")) {
    item.classList.toggle("current", Number(item.dataset.id) === id);
  }
  drawDocument();
  if (typeof markCurrentItem === "function") markCurrentItem();
}

function stopLabel(result) {
  if (result.status === "parse_error") return "parse error";
  if (result.stop === "length") return "cut at the token limit";
  if (result.stop === "repetition") return "stopped repeating";
  return null;
}

function isSuspect(result) {
  const threshold = minConfidence();
  return stopLabel(result) !== null ||
    (threshold !== null && result.confidence !== null && result.confidence < threshold);
}

function drawDocument() {
  const doc = state.doc;
  $("empty").hidden = true;
  $("document").hidden = false;
  $("doc-title").textContent = doc.source;
  $("doc-status").textContent = doc.status;
  $("doc-status").className = `badge status-${doc.status}`;
  $("doc-error").hidden = !doc.error;
  $("doc-error").textContent = doc.error || "";
  drawPage();
}

function drawPage() {
  const doc = state.doc;
  const page = doc.pages[state.page];
  $("page").hidden = !page;
  $("results").replaceChildren();
  $("boxes").replaceChildren();
  $("line-box").hidden = true;
  $("prev").disabled = state.page <= 0;
  $("next").disabled = state.page >= doc.pages.length - 1;
  $("page-label").textContent = page ? `page ${page.number} of ${doc.pages.length}` : "no pages";
  if (!page) return;
  const frame = $("page-frame");
  frame.style.aspectRatio = page.width && page.height ? `${page.width} / ${page.height}` : "";
  const image = $("page-image");
  const url = `/v1/documents/${state.id}/pages/${page.number}/image`;
  $("page-note").textContent = page.warnings.join("; ");
  // the page as the model read it: the scan (and its boxes, in the scan's pixels) turned
  // by the record's rotation and straightened by its skew, both clockwise in CSS
  const turn = (page.rotation || 0) + (page.skew || 0);
  const sideways = page.rotation === 90 || page.rotation === 270;
  const fit = sideways && page.width && page.height ? Math.min(page.width / page.height, page.height / page.width) : 1;
  frame.style.transform = turn ? `rotate(${turn}deg) scale(${fit})` : "";
  image.onerror = async () => {
    image.hidden = true;
    const response = await fetch(url);
    $("page-note").textContent = `page image unavailable: ${await detail(response)}`;
  };
  image.onload = () => { image.hidden = false; };
  if (image.getAttribute("src") !== url) image.src = url;
  if (page.status === "error") {
    $("results").append(el("p", { cls: "error", text: `this page failed: ${page.error}` }));
  }
  page.results.forEach((result, index) => {
    const suspect = isSuspect(result);
    $("boxes").append(regionBox(page, result, index, suspect));
    if (result.task === "layout") {
      for (const region of result.regions) $("boxes").append(detectionBox(page, region));
    }
    $("results").append(resultPanel(page, result, index, suspect));
  });
  if (state.focus !== null) highlight(state.focus, true);
  if (typeof decorateEditors === "function") {  // editors.js, with docvlm view --edit
    decorateEditors(page).catch((error) => { $("page-note").textContent = `editors: ${error.message}`; });
  }
}

function place(node, page, box) {
  node.style.left = `${(100 * box.x0) / page.width}%`;
  node.style.top = `${(100 * box.y0) / page.height}%`;
  node.style.width = `${(100 * (box.x1 - box.x0)) / page.width}%`;
  node.style.height = `${(100 * (box.y1 - box.y0)) / page.height}%`;
  return node;
}

function regionBox(page, result, index, suspect) {
  const box = el("div", {
    cls: `region task-${result.task}${suspect ? " suspect" : ""}`,
    attrs: { "data-index": index, "data-task": result.task, title: `${result.task} #${index + 1}` },
  });
  box.addEventListener("click", () => highlight(index, true));
  box.addEventListener("mouseenter", () => highlight(index, false));
  return place(box, page, result.box);
}

function detectionBox(page, region) {
  const box = el("div", { cls: "detection" }, [el("span", { cls: "label", text: region.label })]);
  return place(box, page, region.box);
}

function highlight(index, scroll) {
  for (const node of document.querySelectorAll(".region, .result")) {
    node.classList.toggle("active", Number(node.dataset.index) === index);
  }
  const panel = document.querySelector(`.result[data-index="${index}"]`);
  if (panel && scroll) panel.scrollIntoView({ block: "nearest" });
}

// --- result panels -------------------------------------------------------------------

function resultPanel(page, result, index, suspect) {
  const flag = stopLabel(result);
  const confidence = result.confidence === null ? null : Math.round(result.confidence * 100);
  const head = el("div", { cls: "result-head" }, [
    el("span", { cls: `badge task-${result.task}`, text: result.task }),
    flag ? el("span", { cls: "badge warn", text: flag }) : el("span", { cls: "badge ok", text: "ok" }),
    confidence === null ? null : el("span", { cls: "confidence", text: `confidence ${confidence}%` }, [
      el("meter", { attrs: { min: 0, max: 100, low: 50, high: 80, optimum: 100, value: confidence } }),
    ]),
  ]);
  const panel = el("article", {
    cls: `result task-${result.task}${suspect ? " suspect" : ""}`,
    attrs: { "data-index": index, "data-task": result.task },
  }, [head]);
  panel.addEventListener("mouseenter", () => highlight(index, false));
  if (result.error) panel.append(el("p", { cls: "error", text: result.error }));
  const body = (BODIES[result.task] || (() => null))(page, result, index);
  if (body) panel.append(body);
  panel.append(el("details", { cls: "raw" }, [
    el("summary", { text: "model output" }), el("pre", { text: result.raw }),
  ]));
  return panel;
}

function textBody(page, result) {
  const list = el("ol", { cls: "lines" });
  for (const line of result.lines) {
    const item = el("li", { text: line.text });
    if (line.box) {
      item.addEventListener("mouseenter", () => {
        place($("line-box"), page, line.box).hidden = false;
      });
      item.addEventListener("mouseleave", () => { $("line-box").hidden = true; });
    }
    list.append(item);
  }
  return list;
}

// The parser's HTML holds only table elements, escaped text and span attributes; it is
// still rebuilt here element by element (DOMParser runs no script), keeping a whitelist.
const TABLE_TAGS = new Set(["TABLE", "THEAD", "TBODY", "TR", "TD", "TH", "B", "I", "SUP", "SUB", "BR"]);

function safeCopy(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.textContent);
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  if (!TABLE_TAGS.has(node.tagName)) return document.createTextNode(node.textContent);
  const copy = document.createElement(node.tagName.toLowerCase());
  for (const name of ["rowspan", "colspan"]) {
    const value = Number.parseInt(node.getAttribute(name), 10);
    if (Number.isInteger(value) && value > 1 && value < 1000) copy.setAttribute(name, String(value));
  }
  for (const child of node.childNodes) {
    const safe = safeCopy(child);
    if (safe) copy.append(safe);
  }
  return copy;
}

function tableBody(page, result) {
  if (!result.table) return null;
  const parsed = new DOMParser().parseFromString(result.table.html, "text/html");
  const table = parsed.body.querySelector("table");
  const wrap = el("div", { cls: "table-wrap" }, [table ? safeCopy(table) : null]);
  const [rows, cols] = result.table.shape;
  wrap.append(el("p", { cls: "meta", text: `${rows} × ${cols}` +
    (result.table.repairs.length ? ` · repaired: ${result.table.repairs.join("; ")}` : "") }));
  return wrap;
}

function drawing(index, label) {
  const page = state.doc.pages[state.page];
  return el("img", {
    cls: "drawing",
    attrs: { alt: label, src: `/v1/documents/${state.id}/pages/${page.number}/results/${index}/drawing` },
  });
}

function facts(pairs) {
  const list = el("dl", { cls: "facts" });
  for (const [name, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    list.append(el("dt", { text: name }), el("dd", { text: value }));
  }
  return list;
}

function moleculeBody(page, result, index) {
  const molecule = result.molecule;
  if (!molecule) return null;
  return el("div", {}, [
    molecule.valid ? drawing(index, `structure of ${molecule.smiles}`) : null,
    facts([["SMILES", molecule.smiles || molecule.raw], ["InChIKey", molecule.inchikey],
      ["formula", molecule.formula]]),
  ]);
}

function musicBody(page, result, index) {
  const score = result.score;
  if (!score) return null;
  return el("div", {}, [
    drawing(index, "engraved score"),
    facts([["notes", score.note_count], ["parts", score.part_count],
      ["repairs", score.repairs.join("; ")]]),
  ]);
}

function layoutBody(page, result) {
  const list = el("ul", { cls: "labels" });
  for (const region of result.regions) {
    const b = region.box;
    list.append(el("li", { text: `${region.label || "(no label)"} at ${Math.round(b.x0)},${Math.round(b.y0)}` +
      ` – ${Math.round(b.x1)},${Math.round(b.y1)}` }));
  }
  return list;
}

const prose = (page, result) => el("p", { cls: "prose", text: result.text });
const BODIES = {
  text: textBody, table: tableBody, molecule: moleculeBody, music: musicBody,
  layout: layoutBody, caption: prose, ask: prose,
};

// --- upload (docvlm serve) -------------------------------------------------------------

async function upload(event) {
  event.preventDefault();
  const form = new FormData($("upload"));
  // an unticked box is not sent, and the service reads pages upright by default
  form.set("orient", $("upload").elements.orient.checked ? "true" : "false");
  const status = $("upload-status");
  status.textContent = "reading…";
  $("convert").disabled = true;
  try {
    const response = await fetch("/v1/convert", { method: "POST", body: form });
    const where = response.headers.get("Content-Location");
    if (response.ok || (response.status === 422 && where)) {
      status.textContent = response.ok ? "done" : `could not read it: ${await detail(response)}`;
      await loadDocuments();
      const id = Number(where.split("/").pop());
      go(id, 1);
    } else {
      const wait = response.headers.get("Retry-After");
      status.textContent = await detail(response) + (wait ? ` (retry in ${wait} s)` : "");
    }
  } catch (error) {
    status.textContent = `failed: ${error.message}`;
  } finally {
    $("convert").disabled = false;
  }
}

async function start() {
  state.info = await getJSON("/v1/info");
  document.body.dataset.mode = state.info.mode;
  $("upload").hidden = state.info.mode !== "serve";
  $("upload").addEventListener("submit", upload);
  $("only-suspect").addEventListener("change", applyFilter);
  $("min-confidence").addEventListener("change", applyFilter);
  $("more").addEventListener("click", () => loadDocuments(false));
  $("prev").addEventListener("click", () => go(state.id, state.doc.pages[state.page - 1].number));
  $("next").addEventListener("click", () => go(state.id, state.doc.pages[state.page + 1].number));
  window.addEventListener("hashchange", route);
  const listing = await loadDocuments();
  if (location.hash) await route();
  else if (listing.documents.length) go(listing.documents[0].id, 1);
  document.body.dataset.ready = "true";
}

start().catch((error) => { $("empty").textContent = `cannot start: ${error.message}`; });
