// docvlm viewer: the correction editors (docvlm view OUT --edit; docs/serve.md).
// Each edit goes to POST /v1/corrections with the page version it was made against; the
// service checks it as model output is checked. A refused edit (422) or one that meets
// another person's save of the same place (409) leaves what was typed in its field, with
// the reason beside it. Values only ever reach the page as form values, text, an <img>
// of server-drawn SVG, or a table copied through the viewer's whitelist (safeCopy).
"use strict";

const editing = { enabled: false, token: false, version: 0, reviewed: false, key: null, drawn: 0,
  said: { text: "", cls: "edit-status" } };

async function editingStart() {
  try {
    Object.assign(editing, await getJSON("/v1/editing"));
  } catch (_) {
    editing.enabled = false;
  }
  document.body.dataset.editing = editing.enabled ? "on" : "off";
  if (state.doc) drawPage();
}

function authHeaders() {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem("docvlm-token");
  if (editing.token && token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

function say(message, kind) {
  editing.said = { text: message, cls: `edit-status ${kind || ""}` };  // kept over a redraw
  const status = $("edit-status");
  if (!status) return;
  status.textContent = message;
  status.className = editing.said.cls;
}

// POST one correction at the page's version; true when it was applied.
async function save(fields, field) {
  const page = state.doc.pages[state.page];
  const body = { sha256: state.doc.sha256, page: page.number, version: editing.version, ...fields };
  let response;
  try {
    response = await fetch("/v1/corrections", { method: "POST", headers: authHeaders(), body: JSON.stringify(body) });
  } catch (error) {
    say(`not saved: ${error.message}`, "refused");
    return false;
  }
  if (response.ok) {
    const answer = await response.json();
    editing.version = answer.version;
    if ($("edit-version")) $("edit-version").textContent = `version ${answer.version}`;
    say(`saved: version ${answer.version}`, "saved");
    if (typeof refreshLists === "function") {  // queue.js: the queue and suspects follow
      refreshLists().catch((error) => { $("page-note").textContent = `lists: ${error.message}`; });
    }
    return true;
  }
  let answer = {};
  try { answer = await response.json(); } catch (_) { /* no body */ }
  const reason = typeof answer.detail === "string" ? answer.detail : `${response.status} ${response.statusText}`;
  if (response.status === 409) {
    editing.version = answer.current;
    if ($("edit-version")) $("edit-version").textContent = `version ${answer.current}`;
    say(`not saved, the page changed meanwhile: ${reason}. Your text is kept; reload to see theirs, or save again over it.`, "conflict");
  } else if (response.status === 401) {
    say("not saved: this service needs its token (enter it above)", "refused");
  } else {
    say(`refused: ${reason}`, "refused");
  }
  if (field) field.classList.add("refused");
  return false;
}

// After saves: the record read again (the folder was rewritten) and the page redrawn.
async function reloadDocument() {
  state.doc = await getJSON(`/v1/documents/${state.id}`);
  drawPage();
}

// body[data-saving] is "true" from a save until the page is drawn again (tests wait on it).
function saving(on) {
  document.body.dataset.saving = on ? "true" : "false";
}

async function saveAndReload(fields, field) {
  saving(true);
  if (await save(fields, field)) await reloadDocument(); else saving(false);
}

// --- the toolbar: version, reviewed, token ---------------------------------------------

async function decorateEditors(page) {
  if (!editing.enabled || !page) return;
  const key = `${state.id}/${page.number}`;
  const mine = ++editing.drawn;
  const known = await getJSON(`/v1/documents/${state.id}/pages/${page.number}/version`);
  if (mine !== editing.drawn) return;  // the page was drawn again meanwhile: not its version
  editing.version = known.version;
  editing.reviewed = known.reviewed;
  if (editing.key !== key) editing.said = { text: "", cls: "edit-status" };
  editing.key = key;
  document.querySelector("#edit-bar")?.remove();
  const reviewed = el("input", { attrs: { type: "checkbox", id: "edit-reviewed" } });
  reviewed.checked = editing.reviewed;
  reviewed.addEventListener("change", async () => {
    saving(true);
    const ok = await save({ reviewed: reviewed.checked }, null);
    if (ok) editing.reviewed = reviewed.checked; else reviewed.checked = editing.reviewed;
    saving(false);
  });
  const bar = el("div", { attrs: { id: "edit-bar" } }, [
    el("label", {}, [reviewed, document.createTextNode(" page reviewed")]),
    el("span", { cls: "meta", attrs: { id: "edit-version" }, text: `version ${editing.version}` }),
  ]);
  if (editing.token) {
    const token = el("input", { attrs: { type: "password", id: "edit-token", placeholder: "token", autocomplete: "off" } });
    token.value = sessionStorage.getItem("docvlm-token") || "";
    token.addEventListener("change", () => sessionStorage.setItem("docvlm-token", token.value));
    bar.append(token);
  }
  const status = el("p", { cls: editing.said.cls, text: editing.said.text, attrs: { id: "edit-status", role: "status" } });
  bar.append(status);
  $("results").prepend(bar);
  page.results.forEach((result, index) => {
    const panel = document.querySelector(`#results .result[data-index="${index}"]`);
    const editor = EDITORS[result.task];
    if (panel && editor) {
      const made = editor(result, index);
      if (made) panel.append(el("div", { cls: "editor", attrs: { "data-editor": result.task } }, [made]));
    }
  });
  saving(false);
}

function button(label, action, cls = "") {
  const node = el("button", { cls, text: label, attrs: { type: "button" } });
  node.addEventListener("click", action);
  return node;
}

// --- a text line: its text, and its box (in page pixels) ------------------------------

const SIDES = ["x0", "y0", "x1", "y1"];

// The square the model read around a result (docvlm.archive.edits.frame_of), and a box's
// four <loc> tokens in it (parsers.box_to_tokens): a moved box is saved as the whole
// output, written as the model writes it.
function frameOf(box) {
  const x0 = Math.trunc(box.x0);
  const y0 = Math.trunc(box.y0);
  const side = Math.max(Math.round(box.x1) - x0, Math.round(box.y1) - y0, 1);
  return { x0, y0, side };
}

function locTokens(box, frame) {
  const bin = (value, offset = 0) => Math.max(0, Math.min(1023, Math.trunc((value / frame.side) * 1024) - offset));
  const y0 = bin(box.y0 - frame.y0);
  const x0 = bin(box.x0 - frame.x0);
  const y1 = Math.max(y0, bin(box.y1 - frame.y0, 1));
  const x1 = Math.max(x0, bin(box.x1 - frame.x0, 1));
  return [y0, x0, y1, x1].map((v) => `<loc${String(v).padStart(4, "0")}>`).join("");
}

function lineEditor(result, index) {
  const page = state.doc.pages[state.page];
  const list = el("ol", { cls: "line-edits" });
  const rows = result.lines.map((line, number) => {
    const input = el("input", { attrs: { type: "text", "data-line": number, "aria-label": `line ${number + 1}` } });
    input.value = line.text;
    const sides = SIDES.map((side) => {
      const field = el("input", { cls: "box-side", attrs: { type: "number", step: "1", "data-side": side, "aria-label": `line ${number + 1} ${side}` } });
      field.value = line.box ? Math.round(line.box[side]) : "";
      return field;
    });
    const box = () => Object.fromEntries(SIDES.map((side, k) => [side, Number(sides[k].value)]));
    const moved = () => line.box && SIDES.some((side, k) => Number(sides[k].value) !== Math.round(line.box[side]));
    const show = () => { if (line.box) place($("line-box"), page, box()).hidden = false; };
    input.addEventListener("focus", show);
    input.addEventListener("input", () => input.classList.remove("refused"));
    for (const field of sides) field.addEventListener("input", show);
    const go = button("save", () => saveLines(index, rows, number, input), "save-line");
    const item = el("li", {}, [input, go]);
    if (line.box) item.append(el("span", { cls: "box-edit" }, [document.createTextNode("box x0 y0 x1 y1"), ...sides]));
    list.append(item);
    return { line, input, box, moved };
  });
  return list;
}

// A line's text alone is a line correction; a moved box rewrites the result's lines whole.
async function saveLines(index, rows, number, input) {
  if (!rows.some((row) => row.moved())) {
    await saveAndReload({ result: index, line: number, text: input.value }, input);
    return;
  }
  const bad = rows.find((row) => {
    const b = row.line.box && row.box();
    return b && !(Number.isFinite(b.x0 + b.y0 + b.x1 + b.y1) && b.x0 < b.x1 && b.y0 < b.y1);
  });
  if (bad) {
    say(`refused: line ${rows.indexOf(bad) + 1}: a box needs x0 < x1 and y0 < y1`, "refused");
    return;
  }
  const result = state.doc.pages[state.page].results[index];
  const frame = frameOf(result.box);
  const value = rows.map((row) => (row.line.box ? locTokens(row.box(), frame) : "") + row.input.value).join("\n");
  await saveAndReload({ result: index, value }, input);
}

// --- a SMILES with its RDKit drawing, a kern score with its engraving -------------------

function previewer(task, image) {
  let timer = null;
  let asked = 0;
  return (value) => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++asked;
      const response = await fetch("/v1/preview", {
        method: "POST", headers: authHeaders(), body: JSON.stringify({ task, value }),
      });
      if (mine !== asked) return;  // a later keystroke asked again
      const note = image.nextElementSibling;
      if (!response.ok) {
        note.textContent = await detail(response);
        image.hidden = true;
        return;
      }
      const reader = new FileReader();  // a data: URL, which the page's CSP allows in <img>
      reader.onload = () => { image.src = reader.result; image.hidden = false; note.textContent = ""; };
      reader.readAsDataURL(new Blob([await response.text()], { type: "image/svg+xml" }));
    }, 300);
  };
}

function valueEditor(task, multiline) {
  return (result, index) => {
    const field = el(multiline ? "textarea" : "input", {
      cls: "value-edit", attrs: multiline ? { rows: 10, spellcheck: "false" } : { type: "text", spellcheck: "false" },
    });
    field.value = task === "molecule" ? (result.molecule?.smiles || result.raw) : (result.score?.kern || result.raw);
    const image = el("img", { cls: "drawing preview", attrs: { alt: `${task} preview` } });
    image.hidden = true;
    const note = el("p", { cls: "meta preview-note" });
    const preview = previewer(task, image);
    field.addEventListener("input", () => { field.classList.remove("refused"); preview(field.value); });
    const go = button("save", () => saveAndReload({ result: index, value: field.value }, field), "save-value");
    return el("div", {}, [field, image, note, go]);
  };
}

// --- a table: cell text, rows and columns, spans; with a live preview --------------------

function tableModel(table) {
  return {
    header: table.header_rows,
    rows: table.shape[0],
    cols: table.shape[1],
    cells: table.cells.map((c) => ({ row: c.row, col: c.col, rowspan: c.rowspan, colspan: c.colspan,
      tag: c.tag, content: c.content, was: c.content })),
    structure: false,
  };
}

function rowCells(model, row) {
  return model.cells.filter((c) => c.row === row).sort((a, b) => a.col - b.col);
}

function tableHtml(model) {
  const section = (name, from, to) => {
    if (from >= to) return "";
    let html = `<${name}>`;
    for (let r = from; r < to; r++) {
      html += "<tr>" + rowCells(model, r).map((c) => {
        const spans = (c.rowspan > 1 ? ` rowspan="${c.rowspan}"` : "") + (c.colspan > 1 ? ` colspan="${c.colspan}"` : "");
        return `<${c.tag}${spans}>${c.content}</${c.tag}>`;
      }).join("") + "</tr>";
    }
    return html + `</${name}>`;
  };
  return `<table>${section("thead", 0, model.header)}${section("tbody", model.header, model.rows)}</table>`;
}

function tableEditor(result, index) {
  if (!result.table) return null;
  const model = tableModel(result.table);
  const wrap = el("div", { cls: "table-edit" });
  const grid = el("div", { cls: "table-wrap grid-edit" });
  const preview = el("div", { cls: "table-wrap table-preview" });
  const note = el("p", { cls: "meta preview-note" });
  let selected = null;
  let timer = null;
  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const response = await fetch("/v1/preview", {
        method: "POST", headers: authHeaders(), body: JSON.stringify({ task: "table", value: tableHtml(model) }),
      });
      if (!response.ok) { note.textContent = await detail(response); return; }
      const parsed = await response.json();
      const table = new DOMParser().parseFromString(parsed.html, "text/html").body.querySelector("table");
      preview.replaceChildren(table ? safeCopy(table) : "");
      note.textContent = `preview: ${parsed.shape[0]} × ${parsed.shape[1]}` +
        (parsed.repairs.length ? ` · ${parsed.repairs.join("; ")}` : "");
    }, 250);
  };
  const draw = () => {
    const table = el("table");
    for (let r = 0; r < model.rows; r++) {
      const tr = el("tr");
      rowCells(model, r).forEach((cell, position) => {
        const input = el("input", { attrs: { type: "text", "data-row": r, "data-cell": position } });
        input.value = cell.content;
        input.addEventListener("input", () => { cell.content = input.value; input.classList.remove("refused"); refresh(); });
        input.addEventListener("focus", () => { selected = cell; });
        const td = el(cell.tag, {}, [input]);
        if (cell.rowspan > 1) td.setAttribute("rowspan", cell.rowspan);
        if (cell.colspan > 1) td.setAttribute("colspan", cell.colspan);
        tr.append(td);
      });
      table.append(tr);
    }
    grid.replaceChildren(table);
  };
  const restructure = (change) => () => {
    if (!selected) { note.textContent = "click a cell first"; return; }
    change(model, selected);
    model.structure = true;
    selected = null;
    draw();
    refresh();
  };
  const saveTable = async () => {
    if (model.structure) {  // the grid changed: the whole table, parsed again by the service
      await saveAndReload({ result: index, value: tableHtml(model) }, grid);
      return;
    }
    for (let r = 0; r < model.rows; r++) {
      const cells = rowCells(model, r);
      for (let position = 0; position < cells.length; position++) {
        const cell = cells[position];
        if (cell.content === cell.was) continue;
        const input = grid.querySelector(`input[data-row="${r}"][data-cell="${position}"]`);
        saving(true);
        if (!(await save({ result: index, cell: [r, position], text: cell.content }, input))) {
          saving(false);
          return;
        }
        cell.was = cell.content;
      }
    }
    saving(true);
    await reloadDocument();
  };
  const tools = el("div", { cls: "table-tools" }, [
    button("+ row below", restructure(addRow)), button("− row", restructure(removeRow)),
    button("+ column right", restructure(addColumn)), button("− column", restructure(removeColumn)),
    button("merge right", restructure(mergeRight)), button("split", restructure(splitCell)),
    button("save", saveTable, "save-table"),
  ]);
  draw();
  wrap.append(tools, grid, note, preview);
  refresh();
  return wrap;
}

const blank = (row, col, tag) => ({ row, col, rowspan: 1, colspan: 1, tag, content: "", was: null });

function addRow(model, cell) {
  const after = cell.row + cell.rowspan - 1;  // below the selected cell's last row
  const covered = new Set();
  for (const c of model.cells) {
    if (c.row > after) c.row += 1;
    else if (c.row + c.rowspan - 1 > after) { c.rowspan += 1; for (let k = c.col; k < c.col + c.colspan; k++) covered.add(k); }
  }
  const tag = after + 1 < model.header ? "th" : "td";
  for (let k = 0; k < model.cols; k++) if (!covered.has(k)) model.cells.push(blank(after + 1, k, tag));
  if (after + 1 < model.header) model.header += 1;
  model.rows += 1;
}

function removeRow(model, cell) {
  if (model.rows <= 1) return;
  const row = cell.row;
  model.cells = model.cells.filter((c) => !(c.row === row && c.rowspan === 1));
  for (const c of model.cells) {
    if (c.row === row) c.rowspan -= 1;  // a span starting here now starts on the next row
    else if (c.row < row && c.row + c.rowspan > row) c.rowspan -= 1;
    else if (c.row > row) c.row -= 1;
  }
  if (row < model.header) model.header -= 1;
  model.rows -= 1;
}

function addColumn(model, cell) {
  const after = cell.col + cell.colspan - 1;
  const covered = new Set();
  for (const c of model.cells) {
    if (c.col > after) c.col += 1;
    else if (c.col + c.colspan - 1 > after) { c.colspan += 1; for (let k = c.row; k < c.row + c.rowspan; k++) covered.add(k); }
  }
  for (let r = 0; r < model.rows; r++) if (!covered.has(r)) model.cells.push(blank(r, after + 1, r < model.header ? "th" : "td"));
  model.cols += 1;
}

function removeColumn(model, cell) {
  if (model.cols <= 1) return;
  const col = cell.col;
  model.cells = model.cells.filter((c) => !(c.col === col && c.colspan === 1));
  for (const c of model.cells) {
    if (c.col <= col && c.col + c.colspan > col) c.colspan -= 1;
    else if (c.col > col) c.col -= 1;
  }
  model.cols -= 1;
}

function mergeRight(model, cell) {
  const next = model.cells.find((c) => c.row === cell.row && c.col === cell.col + cell.colspan);
  if (!next || next.rowspan !== cell.rowspan) return;
  cell.colspan += next.colspan;
  cell.content = [cell.content, next.content].filter((x) => x).join(" ");
  model.cells = model.cells.filter((c) => c !== next);
}

function splitCell(model, cell) {
  for (let r = cell.row; r < cell.row + cell.rowspan; r++) {
    for (let k = cell.col; k < cell.col + cell.colspan; k++) {
      if (r !== cell.row || k !== cell.col) model.cells.push(blank(r, k, cell.tag));
    }
  }
  cell.rowspan = 1;
  cell.colspan = 1;
}

const EDITORS = {
  text: lineEditor, table: tableEditor,
  molecule: valueEditor("molecule", false), music: valueEditor("music", true),
};

editingStart();
