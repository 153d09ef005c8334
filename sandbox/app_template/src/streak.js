"use strict";

const DAY_MS = 24 * 60 * 60 * 1000;

function dayNumber(isoDate) {
  return Math.floor(Date.parse(`${isoDate}T00:00:00Z`) / DAY_MS);
}

// Length of the run of consecutive days ending at `today` in which the practice was done.
function currentStreak(completedDates, today) {
  const days = new Set(completedDates.map(dayNumber));
  let cursor = dayNumber(today);
  let streak = 0;
  while (days.has(cursor)) {
    streak += 1;
    cursor -= 1;
  }
  return streak;
}

module.exports = { currentStreak };
