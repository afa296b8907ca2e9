"use strict";
// Every circuit that contains a component, with its role and score there.
nav();
document.title = "Find · circuit-catalog";

async function main() {
  const p = params();
  const content = document.getElementById("content");
  const form = el("form", { class: "filters", method: "get", action: "/find" },
    el("label", {}, "component (a9.h9, m3, L9H9…)", el("input", { name: "component", id: "component", value: p.get("component") || "" })),
    el("label", {}, "model", el("input", { name: "model", value: p.get("model") || "", size: 12 })),
    el("button", { type: "submit" }, "find"));
  content.replaceChildren(el("h1", {}, "Find a component"), form);
  if (!p.get("component")) return;
  const hits = await api("/api/find" + query({ component: p.get("component"), model: p.get("model") }));
  const t = tableOf(["circuit", "name", "model", "task", "method", "node", "score", "role / label"],
    hits.map(h => [circuitLink(h.circuit_id), h.circuit_name || "-", h.model, h.task, h.method || "-", h.node_id, fmt(h.score), h.role || h.label || ""]), [6]);
  t.id = "hits";
  content.append(el("p", {}, `${hits.length} circuits`), t);
}
main().catch(showError);
