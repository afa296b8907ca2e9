"use strict";
// One circuit: drawing (hover, click, zoom, pan, edge slider), provenance, metrics, curve, nodes.
nav();

async function main() {
  const ref = decodeURIComponent(window.location.pathname.split("/").pop());
  const p = params();
  const data = await api("/api/circuits/" + encodeURIComponent(ref) + query({ model: p.get("model"), compare: p.get("compare") }));
  const c = data.circuit;
  document.title = `${c.name || c.task} · circuit-catalog`;
  const content = document.getElementById("content");
  const drawingBox = el("div", { id: "drawing-box" });
  const roleLegend = el("p", { class: "legend", id: "roles" });
  const panel = el("div", { class: "panel", id: "selection" }, "Click a node to see its edges.");
  const slider = el("input", { type: "range", id: "edge-slider", min: 0, value: 0 });
  const sliderLabel = el("span", { id: "edge-count" });
  const title = el("h1", {}, `Circuit ${c.id}: ${c.name || "-"} `,
    el("small", {}, `task ${c.task} · model ${c.model}`));
  const legend = data.other ? el("p", { class: "legend" }, "compared with ", circuitLink(data.other.id, `circuit ${data.other.id} (${data.other.name || data.other.task})`), ": ",
    el("span", { class: "shared" }, "both"), el("span", { class: "only-a" }, "this one only"),
    el("span", { class: "only-b" }, "the other only")) : null;
  const prov = c.provenance;
  const metrics = [["faithfulness", c.metrics.faithfulness], ["CPR", c.metrics.cpr], ["CMD", c.metrics.cmd]]
    .filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => [k, fmt(v)]);
  const curvePoints = c.metrics.faithfulness_curve;
  content.replaceChildren(...[
    title, legend,
    el("div", { class: "layout" },
      el("div", {}, el("div", { class: "controls" }, el("label", { for: "edge-slider" }, "edges shown "), slider, sliderLabel), drawingBox, roleLegend,
        el("p", { class: "legend" }, "edge colour: sign (blue +, red −); width: |score|; dashed into q, dotted into k, dash-dot into v")),
      el("div", {}, el("h2", {}, "Selected node"), panel,
        el("h2", {}, "Metrics"), fields(metrics.concat([["nodes", c.summary.nodes], ["edges", c.summary.edges], ["scored edges", c.summary.scored_edges]])),
        curvePoints && curvePoints.length ? el("div", { id: "curve" }, el("h2", {}, "Faithfulness curve"), curve(curvePoints, 320, 300)) : null)),
    c.attention && c.attention.prompts.length ? attentionSection(c.attention) : null,
    el("h2", {}, "Provenance"),
    fields([["source", prov.source + (prov.source_format ? ` (${prov.source_format})` : "")], ["file", prov.source_file],
            ["method", prov.method], ["method parameters", Object.keys(prov.method_params || {}).length ? prov.method_params : null],
            ["selection", prov.selection ? `${prov.selection.rule} ${prov.selection.value ?? ""}` : null],
            ["ablation", prov.ablation], ["metric", prov.metric], ["dataset", prov.dataset_hash ? `${prov.dataset_hash} (${prov.dataset_size} examples)` : null],
            ["seed", prov.seed], ["citation", prov.citation], ["notes", prov.notes], ["created", prov.created_at], ["tags", c.tags.join(", ")]]),
    el("h2", {}, "Nodes"),
    tableOf(["id", "kind", "score", "role / label"], c.nodes.map(n => [n.id, n.kind, fmt(n.score), n.role || n.label || ""]), [2])].filter(Boolean));
  const drawing = drawCircuit(drawingBox, data.layout, { legend: roleLegend,
    onSelect(node, edges) {
      panel.replaceChildren(el("strong", { id: "selected-node" }, node.id),
        el("div", {}, `score ${fmt(node.score)}${node.role ? " · " + node.role : ""}`),
        edges.length ? tableOf(["edge", "score"], edges.map(e => [e.id, fmt(e.score)]), [1]) : el("p", {}, "no edges"));
    } });
  slider.max = drawing.edgeCount;
  slider.value = Math.min(drawing.edgeCount, 200);
  const update = () => { drawing.showEdges(Number(slider.value)); sliderLabel.textContent = `${slider.value} of ${drawing.edgeCount}`; };
  slider.addEventListener("input", update);
  update();
}
function attentionSection(att) {
  const headSel = el("select", { id: "attention-head" }, att.heads.map(h => el("option", { value: h }, h)));
  const promptSel = el("select", { id: "attention-prompt" }, att.prompts.map((p, i) => el("option", { value: i }, `prompt ${i + 1}`)));
  const box = el("div", { id: "attention" });
  const text = el("p", { id: "attention-prompt-text" });
  const render = () => {
    const p = att.prompts[Number(promptSel.value)];
    text.textContent = p.prompt;
    box.replaceChildren(attentionHeatmap(p, headSel.value));
  };
  headSel.addEventListener("change", render);
  promptSel.addEventListener("change", render);
  render();
  return el("div", {}, el("h2", {}, "Attention patterns"),
    el("div", { class: "controls" }, el("label", {}, "head ", headSel), el("label", {}, "prompt ", promptSel)),
    text, el("p", { class: "legend" }, "rows: the attending token (bold: where the answer is read); columns: the token attended to"), box);
}

main().catch(showError);
