// Read a GraphML file with Cytoscape.js's GraphML extension (cytoscape-graphml) and print what
// it loaded as JSON: {"nodes": [data...], "edges": [data...]}. Usage: node read_graphml.js FILE
// The extension needs jQuery and a DOM; jsdom provides them under Node.
"use strict";
const fs = require("fs");
const { JSDOM } = require("jsdom");

const window = new JSDOM("<!DOCTYPE html><html><body></body></html>").window;
global.window = window;
global.document = window.document;
global.DOMParser = window.DOMParser;
global.XMLSerializer = window.XMLSerializer;
const $ = require("jquery"); // returns jQuery itself, as a global document exists
const cytoscape = require("cytoscape");
require("cytoscape-graphml")(cytoscape, $);

const cy = cytoscape({ headless: true });
cy.graphml({ layoutBy: null });
cy.graphml(fs.readFileSync(process.argv[2], "utf8"));
const out = {
  nodes: cy.nodes().map((n) => n.data()),
  edges: cy.edges().map((e) => e.data()),
};
process.stdout.write(JSON.stringify(out));
