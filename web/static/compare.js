"use strict";
// Two circuits side by side: the numbers `catalog compare` prints, a drawing of their union with
// shared and exclusive components coloured, and the component lists.
nav();
document.title = "Compare · circuit-catalog";

async function main() {
  const p = params();
  const content = document.getElementById("content");
  const form = el("form", { class: "filters", method: "get", action: "/compare" },
    el("label", {}, "circuit A", el("input", { name: "a", value: p.get("a") || "", size: 10 })),
    el("label", {}, "circuit B", el("input", { name: "b", value: p.get("b") || "", size: 10 })),
    el("label", {}, "model", el("input", { name: "model", value: p.get("model") || "", size: 12 })),
    el("button", { type: "submit" }, "compare"));
  content.replaceChildren(el("h1", {}, "Compare two circuits"), form);
  if (!p.get("a") || !p.get("b")) return;
  const r = await api("/api/compare" + query({ a: p.get("a"), b: p.get("b"), model: p.get("model") }));
  const side = s => `circuit ${s.id} (${s.name || s.task}, ${s.method || "-"})`;
  const rows = [["nodes", r.nodes], ["heads", r.heads], ["MLPs", r.mlps], ["edges", r.edges]]
    .concat(r.features ? [["features", r.features]] : [])
    .map(([k, o]) => [k, o.size_a, o.size_b, o.shared, fmt(o.jaccard), fmt(o.overlap)]);
  const list = (items, cls) => el("ul", { class: cls }, items.map(c => el("li", { class: cls }, c.id,
    c.role_a || c.role_b ? ` (${[c.role_a, c.role_b].filter(Boolean).join(" / ")})` : "")));
  const drawingBox = el("div", { id: "drawing-box" });
  const panel = el("div", { class: "panel", id: "selection" }, "Click a node to see its edges.");
  content.append(
    el("p", {}, "A: ", circuitLink(r.a.id, side(r.a)), " · B: ", circuitLink(r.b.id, side(r.b))),
    el("table", { id: "overlap" }, el("thead", {}, el("tr", {}, ["", "A", "B", "shared", "Jaccard", "overlap"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows.map(row => el("tr", {}, row.map((v, i) => el("td", { class: i ? "num" : null }, v)))))),
    el("p", { id: "weighted" }, `score-weighted overlap: ${fmt(r.weighted)}`),
    el("p", { class: "legend" }, el("span", { class: "shared" }, "shared"), el("span", { class: "only-a" }, "A only"), el("span", { class: "only-b" }, "B only")),
    el("div", { class: "layout" }, drawingBox, panel),
    el("div", { class: "layout" },
      el("div", {}, el("h2", {}, `shared (${r.shared.length})`), list(r.shared, "shared")),
      el("div", {}, el("h2", {}, `A only (${r.only_a.length})`), list(r.only_a, "only-a"),
                    el("h2", {}, `B only (${r.only_b.length})`), list(r.only_b, "only-b"))));
  const data = await api("/api/circuits/" + r.a.id + query({ compare: String(r.b.id) }));
  drawCircuit(drawingBox, data.layout, { onSelect(node, edges) {
    panel.replaceChildren(el("strong", { id: "selected-node" }, node.id),
      tableOf(["edge", "score"], edges.map(e => [e.id, fmt(e.score)]), [1])); } }).showEdges(200);
}
main().catch(showError);
