"use strict";
// Reuse across tasks: the task x task Jaccard heatmap (each cell opens the comparison) and the
// components by number of tasks (each opens `find`).
nav();
document.title = "Reuse · circuit-catalog";

async function main() {
  const p = params();
  const content = document.getElementById("content");
  const all = await api("/api/circuits");
  const models = [...new Set(all.map(r => r.model))].sort();
  const select = el("select", { name: "model", id: "model" }, models.map(m => {
    const o = el("option", { value: m }, m); if (p.get("model") === m) o.selected = true; return o; }));
  const form = el("form", { class: "filters", method: "get", action: "/reuse" }, el("label", {}, "model", select),
                  el("button", { type: "submit" }, "show"));
  select.addEventListener("change", () => form.submit());
  content.replaceChildren(el("h1", {}, "Component reuse across tasks"), form);
  if (!models.length) { content.append(el("p", {}, "The catalog is empty.")); return; }
  const model = p.get("model") || models[0];
  const r = await api("/api/reuse" + query({ model }));
  const heat = el("table", { class: "heat", id: "heatmap" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), r.tasks.map(t => el("th", {}, t)))),
    el("tbody", {}, r.tasks.map((t, i) => el("tr", {}, el("th", {}, `${t} (${r.sizes[i]})`),
      r.tasks.map((u, j) => {
        const v = r.jaccard[i][j];
        const shade = v === null ? "#fff" : `rgba(46, 111, 221, ${0.1 + 0.8 * v})`;
        return el("td", { class: "cell", style: `background:${shade}`, title: `${r.shared[i][j]} shared` },
          el("a", { href: "/compare" + query({ a: r.circuits[t], b: r.circuits[u] }) }, fmt(v, 2)));
      })))));
  const comps = tableOf(["component", "kind", "tasks", "circuits", "which tasks"], r.components.map(c => [
    el("a", { href: "/find" + query({ component: c.component, model }) }, c.component), c.kind, c.n_tasks, c.n_circuits,
    el("span", {}, c.tasks.flatMap((t, k) => [k ? ", " : "", el("a", { href: "/circuit/" + r.circuits[t] }, t)]))]), [2, 3]);
  comps.id = "components";
  content.append(el("h2", {}, `Task x task Jaccard on ${r.model}`), heat,
                 el("h2", {}, "Components by number of tasks"), comps);
}
main().catch(showError);
