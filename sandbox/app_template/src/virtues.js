"use strict";

// The four cardinal virtues the daily practices are grouped under.
const VIRTUES = ["wisdom", "justice", "courage", "temperance"];

function normalizeVirtue(name) {
  const key = String(name || "").trim().toLowerCase();
  return VIRTUES.includes(key) ? key : null;
}

function virtueLabel(name) {
  const key = normalizeVirtue(name);
  if (key === null) {
    return "Unknown virtue";
  }
  return key.charAt(0).toUpperCase() + key.slice(1);
}

module.exports = { VIRTUES, normalizeVirtue, virtueLabel };
