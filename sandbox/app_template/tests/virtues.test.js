"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");

const { normalizeVirtue, virtueLabel, VIRTUES } = require("../src/virtues");

test("there are four cardinal virtues", () => {
  assert.equal(VIRTUES.length, 4);
});

test("virtue names are normalized", () => {
  assert.equal(normalizeVirtue("  Courage "), "courage");
  assert.equal(normalizeVirtue("greed"), null);
});

test("virtue labels are capitalized", () => {
  assert.equal(virtueLabel("temperance"), "Temperance");
  assert.equal(virtueLabel(undefined), "Unknown virtue");
});
