"use strict";

// The real repository runs `next dev` here. The sandbox app is served by the release bot
// (`release-bot demo`), so point Playwright at it with PLAYWRIGHT_BASE_URL instead.
console.error("No dev server in the sandbox sample: set PLAYWRIGHT_BASE_URL to the staging app.");
process.exit(1);
