"use strict";
// The circuit list: filters (model, task, method, tag, source) go to the API; search filters
// the returned rows by id, name, task, model, method and tags.
nav();
document.title = "Circuits · circuit-catalog";
const FILTERS = ["model", "task", "method", "tag", "source"];

async function main() {
  const content = document.getElementById("content");
  const p = params();
  const all = await api("/api/circuits");
  const rows = await api("/api/circuits" + query(Object.fromEntries(FILTERS.map(f => [f, p.get(f)]))));
  const values = {
    model: all.map(r => r.model), task: all.map(r => r.task), method: all.map(r => r.method),
    tag: all.flatMap(r => r.tags), source: all.map(r => r.source) };
  const form = el("form", { class: "filters", method: "get", action: "/" });
  for (const f of FILTERS) {
    const select = el("select", { name: f, id: "filter-" + f }, el("option", { value: "" }, "any"));
    for (const v of [...new Set(values[f].filter(Boolean))].sort()) {
      const o = el("option", { value: v }, v);
      if (p.get(f) === v) o.selected = true;
      select.append(o);
    }
    select.addEventListener("change", () => form.submit());
    form.append(el("label", {}, f, select));
  }
  const search = el("input", { type: "search", id: "search", placeholder: "name, task, tag…", value: p.get("q") || "" });
  form.append(el("label", {}, "search", search));
  const count = el("p", { id: "count" });
  const compareForm = el("form", { class: "filters", action: "/compare", method: "get" },
    el("label", {}, "compare circuit", el("input", { name: "a", id: "compare-a", size: 8 })),
    el("label", {}, "with", el("input", { name: "b", id: "compare-b", size: 8 })),
    el("button", { type: "submit" }, "compare"));
  const tbody = el("tbody");
  const headers = ["id", "name", "model", "task", "method", "source", "nodes", "edges", "heads", "mlps", "faithfulness", "tags"];
  const table = el("table", { id: "circuits" }, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))), tbody);
  function render() {
    const q = search.value.trim().toLowerCase();
    const shown = rows.filter(r => !q || [String(r.id), r.name, r.task, r.model, r.method, ...r.tags]
      .some(s => (s || "").toLowerCase().includes(q)));
    tbody.replaceChildren(...shown.map(r => el("tr", { "data-id": r.id },
      el("td", { class: "num" }, circuitLink(r.id)), el("td", {}, circuitLink(r.id, r.name || "-")),
      el("td", {}, r.model), el("td", {}, r.task), el("td", {}, r.method || "-"), el("td", {}, r.source),
      el("td", { class: "num" }, r.n_nodes), el("td", { class: "num" }, r.n_edges),
      el("td", { class: "num" }, r.n_heads), el("td", { class: "num" }, r.n_mlps),
      el("td", { class: "num" }, fmt(r.metrics?.faithfulness)), el("td", {}, r.tags.join(", ")))));
    count.textContent = `${shown.length} of ${all.length} circuits`;
  }
  search.addEventListener("input", render);
  form.addEventListener("submit", ev => { ev.preventDefault(); });
  render();
  content.replaceChildren(el("h1", {}, "Circuits"), form, count, table, el("h2", {}, "Compare two circuits"), compareForm);
}
main().catch(showError);
