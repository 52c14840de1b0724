// docvlm viewer: the review queue (#/review), what `docvlm review OUT --json` lists, in its
// order: the weakest results first, with their confidence and why (GET /v1/review). An
// item opens its document's page at that result; after a save (editors.js) the queue and
// the suspect list are asked again, so a corrected result or a reviewed page leaves them.
"use strict";

const queue = { shown: false };

// The routes of the sidebar: #/review shows the queue, #/documents the document list.
// True when the hash was one of them (app.js's route stops there).
async function routeQueue(hash) {
  if (hash !== "#/review" && hash !== "#/documents") return false;
  queue.shown = hash === "#/review";
  $("only-suspect").checked = false;
  $("min-confidence").value = "";
  document.body.classList.remove("filtering");
  $("suspects").hidden = true;
  $("documents").hidden = queue.shown;
  $("queue").hidden = !queue.shown;
  $("tab-review").classList.toggle("current", queue.shown);
  $("tab-documents").classList.toggle("current", !queue.shown);
  if (queue.shown) { $("more").hidden = true; await loadQueue(); } else await loadDocuments();
  return true;
}

function queueWhere(item) {
  if (item.page === null) return "whole file";
  return `p. ${item.page}` + (item.task ? ` · ${item.task}` : "") + (item.result === null ? "" : ` #${item.result + 1}`);
}

async function loadQueue() {
  const body = await getJSON("/v1/review");
  const list = $("queue");
  list.replaceChildren();
  body.items.forEach((item, rank) => {
    const number = body.documents[rank];
    const sure = item.confidence === null ? "confidence unknown" : `confidence ${item.confidence.toFixed(3)}`;
    const entry = el("li", {
      cls: "queue-item",
      attrs: { "data-document": number, "data-page": item.page ?? "", "data-result": item.result ?? "", "data-task": item.task ?? "" },
    }, [
      el("span", { cls: "name", text: item.source }),
      el("span", { cls: "meta", text: `${queueWhere(item)} · ${sure}` }),
      ...item.reasons.map((reason) => el("span", { cls: "badge warn reason", text: reason.replace("_", " ") })),
      item.detail ? el("span", { cls: "detail", text: item.detail }) : null,
    ]);
    entry.addEventListener("click", () => go(number, item.page || 1, item.result));
    list.append(entry);
  });
  markCurrentItem();
  $("list-title").textContent = `Review queue (${body.items.length})`;
  document.body.dataset.queue = String(body.items.length);  // tests wait on it
}

// The item open now: its document, page and (when one is focused) result.
function markCurrentItem() {
  const page = state.doc ? state.doc.pages[state.page] : undefined;
  for (const entry of document.querySelectorAll("#queue li")) {
    const focused = state.focus === null || state.focus === undefined || entry.dataset.result === String(state.focus);
    entry.classList.toggle("current", page !== undefined && Number(entry.dataset.document) === state.id &&
      Number(entry.dataset.page) === page.number && focused);
  }
}

// After a save: what the sidebar shows, asked again (suspect counts, suspects, queue).
async function refreshLists() {
  if (queue.shown) await loadQueue();
  else if (!$("suspects").hidden) await loadSuspects();
  else await loadDocuments();
}

// A tab clicked while its address is already the page's: shown again all the same.
for (const [tab, hash] of [["tab-review", "#/review"], ["tab-documents", "#/documents"]]) {
  $(tab).addEventListener("click", (event) => {
    if (location.hash !== hash) return;
    event.preventDefault();
    routeQueue(hash).catch((error) => { $("list-title").textContent = error.message; });
  });
}
