// circuit-catalog web view: shared helpers. Every string from the catalog is inserted as a DOM
// text node (never as HTML), so names and labels from imported files cannot inject markup.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
  return node;
}

function fmt(x, digits) {
  if (x === null || x === undefined) return "-";
  return Number(x).toPrecision(digits || 3).replace(/\.?0+(e|$)/, "$1");
}

function params() { return new URLSearchParams(window.location.search); }

function query(obj) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

async function api(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || body.detail?.[0]?.msg || response.statusText);
  return body;
}

function showError(err) {
  const box = document.getElementById("error");
  box.textContent = String(err.message || err);
}

function circuitLink(id, text) { return el("a", { href: "/circuit/" + encodeURIComponent(id) }, text ?? String(id)); }

function nav() {
  document.body.prepend(el("header", {},
    el("a", { class: "brand", href: "/" }, "circuit-catalog"),
    el("a", { href: "/" }, "circuits"), el("a", { href: "/compare" }, "compare"),
    el("a", { href: "/reuse" }, "reuse"), el("a", { href: "/find" }, "find")));
}

function fields(pairs) {
  const dl = el("dl", { class: "fields" });
  for (const [k, v] of pairs) {
    if (v === null || v === undefined || v === "") continue;
    dl.append(el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v)));
  }
  return dl;
}

function tableOf(headers, rows, numeric) {
  const t = el("table", {}, el("thead", {}, el("tr", {}, headers.map((h, i) =>
    el("th", { class: numeric && numeric.includes(i) ? "num" : null }, h)))));
  const body = el("tbody");
  for (const r of rows) body.append(el("tr", {}, r.map((c, i) =>
    el("td", { class: numeric && numeric.includes(i) ? "num" : null }, c))));
  t.append(body);
  return t;
}

// --- the circuit drawing: pan, zoom, hover, click, edge slider --------------------------------

const KIND_COLOURS = { input: "#8a8f98", logits: "#8a8f98", attention: "#3b6fd4", mlp: "#d9822b",
                       feature: "#2a9d8f", error: "#b0b0b0" };
const SIDE_COLOURS = { shared: "#2e9e44", only_a: "#3b6fd4", only_b: "#e07b2a" };
const SIDE_NAMES = { shared: "both circuits", only_a: "A only", only_b: "B only" };
const ROLE_PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf",
                      "#17becf", "#bcbd22", "#666666", "#1b9e77", "#d95f02"];
const QKV_DASH = { q: "0.15 0.08", k: "0.04 0.06", v: "0.15 0.05 0.04 0.05" };

function edgeId(e) { return `${e.src}->${e.dst}` + (e.qkv ? `<${e.qkv}>` : ""); }

// `layout` is the library's layered layout (catalog.layered.Layout): nodes with x (column) and
// y (row: 0 input, layer + 1, logits on top), edges with src, dst, qkv, score and, when two
// circuits are compared, each node's and edge's side (shared, only_a, only_b).
function drawCircuit(container, layout, options) {
  const opts = Object.assign({ onSelect: () => {} }, options);
  const data = layout;
  const nodes = new Map(data.nodes.map(n => [n.id, n]));
  const edges = data.edges.filter(e => nodes.has(e.src) && nodes.has(e.dst))
    .map(e => Object.assign({ id: edgeId(e) }, e))
    .sort((x, y) => Math.abs(y.score ?? 0) - Math.abs(x.score ?? 0));
  if (!data.nodes.length) { container.replaceChildren(el("p", {}, "This circuit has no nodes to draw.")); return { edgeCount: 0, showEdges() {}, select() {} }; }
  // Stretch columns so that the drawing fills a wide box however many layers the model has.
  const ys0 = data.nodes.map(n => n.y), xs0 = data.nodes.map(n => n.x);
  const spanX = Math.max(1, Math.max(...xs0) - Math.min(...xs0)), spanY = Math.max(1, Math.max(...ys0) - Math.min(...ys0));
  const kx = Math.max(1, 1.7 * spanY / spanX);
  for (const n of data.nodes) n.x = n.x * kx;
  const xs = data.nodes.map(n => n.x), ys = data.nodes.map(n => n.y);
  const pad = 1;
  const gutter = 1.6;  // room for the row names on the left
  const box = { x: Math.min(...xs) - pad - gutter, y: Math.min(...ys) - pad,
                w: Math.max(...xs) - Math.min(...xs) + 2 * pad + gutter, h: Math.max(...ys) - Math.min(...ys) + 2 * pad };
  const root = svg("svg", { id: "drawing", viewBox: `${box.x} ${box.y} ${box.w} ${box.h}`,
                            preserveAspectRatio: "xMidYMid meet", role: "img" });
  // y grows downwards in SVG; the layout puts input at y=0 and logits on top, so flip.
  const flip = y => box.y + box.h - (y - box.y);
  const maxEdge = Math.max(1e-12, ...edges.map(e => Math.abs(e.score ?? 0)));
  const maxNode = Math.max(1e-12, ...data.nodes.map(n => n.weight));
  const edgeLayer = svg("g", { class: "edges" }), nodeLayer = svg("g", { class: "nodes" });
  const rowLayer = svg("g", { class: "rows" });
  root.append(rowLayer, edgeLayer, nodeLayer);
  for (const [i, name] of (layout.rows || []).entries()) {
    if (!ys.includes(i)) continue;
    const t = svg("text", { x: box.x + 0.1, y: flip(i) + 0.08, "font-size": 0.26, fill: "#8a8f98" });
    t.textContent = name;
    rowLayer.append(t);
  }
  // Colour by role where the circuit names roles (a legend lists them), else by kind.
  const roles = [...new Set(data.nodes.map(n => n.role).filter(Boolean))];
  const roleColour = new Map(roles.map((r, i) => [r, ROLE_PALETTE[i % ROLE_PALETTE.length]]));
  if (roles.length && !data.nodes.some(n => n.side) && opts.legend)
    opts.legend.replaceChildren(...roles.map(r => el("span", { style: `border-left: 12px solid ${roleColour.get(r)}` }, r)));
  const tooltip = document.getElementById("tooltip");
  const edgeEls = [];
  for (const e of edges) {
    const a = nodes.get(e.src), b = nodes.get(e.dst);
    // an edge within one row (a head feeding its layer's MLP) bows upwards so it stays visible
    const bow = a.y === b.y ? -0.35 - 0.04 * Math.abs(b.x - a.x) : 0;
    const d = `M ${a.x} ${flip(a.y)} Q ${(a.x + b.x) / 2} ${(flip(a.y) + flip(b.y)) / 2 + bow} ${b.x} ${flip(b.y)}`;
    const line = svg("path", { d, fill: "none",
      stroke: (e.score ?? 0) >= 0 ? "#2f6fdd" : "#d03b3b",
      "stroke-width": 0.02 + 0.12 * Math.abs(e.score ?? 0) / maxEdge,
      "stroke-dasharray": QKV_DASH[e.qkv] ?? null, "stroke-opacity": 0.75,
      "data-edge": e.id, class: "edge" });
    line.addEventListener("mousemove", ev => tip(ev, `${e.id}\nscore ${fmt(e.score)}`));
    line.addEventListener("mouseleave", () => tooltip.style.display = "none");
    edgeLayer.append(line);
    edgeEls.push(line);
  }
  for (const n of data.nodes) {
    const r = 0.12 + 0.25 * Math.sqrt(n.weight / maxNode);
    const fill = n.side ? SIDE_COLOURS[n.side] : (roleColour.get(n.role) || KIND_COLOURS[n.kind] || "#666");
    const c = svg("circle", { cx: n.x, cy: flip(n.y), r: r.toFixed(3), fill, stroke: "#1d2330",
                              "stroke-width": 0.02, "data-node": n.id, class: "node" });
    const label = svg("text", { x: n.x, y: flip(n.y) + r + 0.22, "text-anchor": "middle",
                                "font-size": 0.22 });
    label.textContent = n.id;
    c.addEventListener("mousemove", ev => tip(ev, [n.id, n.role || n.label ? `role: ${n.role || n.label}` : null,
      `score: ${fmt(n.score)}`, n.side ? `in: ${SIDE_NAMES[n.side]}` : null]
      .filter(Boolean).join("\n")));
    c.addEventListener("mouseleave", () => tooltip.style.display = "none");
    c.addEventListener("click", ev => { ev.stopPropagation(); select(n.id); });
    nodeLayer.append(c, label);
  }
  function tip(ev, text) {
    tooltip.textContent = text;
    tooltip.style.display = "block";
    tooltip.style.left = ev.clientX + 12 + "px";
    tooltip.style.top = ev.clientY + 12 + "px";
  }
  function select(id) {
    for (const c of nodeLayer.querySelectorAll("circle"))
      c.setAttribute("stroke-width", c.dataset.node === id ? 0.08 : 0.02);
    opts.onSelect(nodes.get(id), edges.filter(e => e.src === id || e.dst === id));
  }
  function showEdges(k) {
    edgeEls.forEach((line, i) => line.style.display = i < k ? "" : "none");
  }
  // zoom on the wheel, pan by dragging
  let view = { ...box }, drag = null;
  const apply = () => root.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  root.addEventListener("wheel", ev => {
    ev.preventDefault();
    const f = ev.deltaY > 0 ? 1.15 : 1 / 1.15, rect = root.getBoundingClientRect();
    const px = view.x + view.w * (ev.clientX - rect.left) / rect.width;
    const py = view.y + view.h * (ev.clientY - rect.top) / rect.height;
    view = { x: px - (px - view.x) * f, y: py - (py - view.y) * f, w: view.w * f, h: view.h * f };
    apply();
  }, { passive: false });
  root.addEventListener("mousedown", ev => { drag = { x: ev.clientX, y: ev.clientY, view: { ...view } }; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", ev => {
    if (!drag) return;
    const rect = root.getBoundingClientRect();
    view.x = drag.view.x - (ev.clientX - drag.x) * view.w / rect.width;
    view.y = drag.view.y - (ev.clientY - drag.y) * view.h / rect.height;
    apply();
  });
  container.replaceChildren(root);
  return { edgeCount: edges.length, showEdges, select };
}

function curve(points, width, height) {
  // a small line chart of [[x, y], ...] with x and y in [0, 1]
  const s = svg("svg", { width, height, viewBox: "-0.08 -0.05 1.16 1.22", class: "curve" });
  s.append(svg("rect", { x: 0, y: 0, width: 1, height: 1, fill: "none", stroke: "#ccc", "stroke-width": 0.005 }));
  const ys = points.map(p => p[1]), lo = Math.min(0, ...ys), hi = Math.max(1, ...ys);
  const Y = y => 1 - (y - lo) / (hi - lo);
  s.append(svg("polyline", { points: points.map(([x, y]) => `${x},${Y(y)}`).join(" "),
                             fill: "none", stroke: "#3b6fd4", "stroke-width": 0.012, class: "curve-line" }));
  for (const [x, y] of points) s.append(svg("circle", { cx: x, cy: Y(y), r: 0.012, fill: "#3b6fd4" }));
  const t = svg("text", { x: 0, y: 1.1, "font-size": 0.06 });
  t.textContent = "fraction of edges kept → faithfulness";
  s.append(t);
  return s;
}

// --- attention patterns: one head on one prompt, as a [query, key] heatmap --------------------

function attentionHeatmap(prompt, head) {
  const tokens = prompt.tokens, rows = prompt.heads[head], n = tokens.length;
  const cell = 1, left = 4, top = 4;
  const s = svg("svg", { viewBox: `0 0 ${left + n * cell + 0.5} ${top + n * cell + 0.5}`, class: "attention",
                         width: Math.min(640, 24 * n + 100), "data-head": head });
  for (let q = 0; q < n; q++) {
    const yl = svg("text", { x: left - 0.15, y: top + q * cell + 0.65, "font-size": 0.5, "text-anchor": "end",
                             "font-weight": q === prompt.read_position ? "bold" : null });
    yl.textContent = tokens[q];
    s.append(yl);
    for (let k = 0; k < n; k++) {
      const w = rows[q][k];
      const r = svg("rect", { x: left + k * cell, y: top + q * cell, width: cell, height: cell,
                              fill: `rgba(59, 111, 212, ${w})`, stroke: "#eee", "stroke-width": 0.02 });
      const title = svg("title");
      title.textContent = `${tokens[q]} → ${tokens[k]}: ${fmt(w)}`;
      r.append(title);
      s.append(r);
    }
  }
  for (let k = 0; k < n; k++) {
    const xl = svg("text", { transform: `translate(${left + k * cell + 0.65}, ${top - 0.15}) rotate(-60)`, "font-size": 0.5 });
    xl.textContent = tokens[k];
    s.append(xl);
  }
  return s;
}
