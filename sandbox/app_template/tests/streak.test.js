"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");

const { currentStreak } = require("../src/streak");

test("a streak counts consecutive days up to today", () => {
  const done = ["2025-03-01", "2025-03-02", "2025-03-03"];
  assert.equal(currentStreak(done, "2025-03-03"), 3);
});

test("a missed day breaks the streak", () => {
  const done = ["2025-03-01", "2025-03-03"];
  assert.equal(currentStreak(done, "2025-03-03"), 1);
  assert.equal(currentStreak(done, "2025-03-04"), 0);
});
