import { defineConfig, devices } from "@playwright/test";

// Against a deployed app (staging, the release-bot sandbox) set PLAYWRIGHT_BASE_URL; without it
// Playwright starts the local dev server, as the real repository's config does. Like the real
// config, it leaves `outputDir` at its default (`test-results/` in the checkout, which
// .gitignore does not list) and adds an HTML report and screenshots of failures.
const baseURL = process.env.PLAYWRIGHT_BASE_URL;

export default defineConfig({
  testDir: "./e2e",
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: 1,
  reporter: [["list"], ["html", { open: "never" }]],
  use: {
    baseURL: baseURL ?? "http://127.0.0.1:3000",
    trace: "off",
    video: "off",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.PLAYWRIGHT_CHROMIUM_PATH || "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
      ],
    },
  },
  projects: [
    {
      name: "chromium",
      use: { ...devices["Desktop Chrome"] },
    },
  ],
  ...(baseURL
    ? {}
    : {
        webServer: {
          command: "npm run dev",
          port: 3000,
          reuseExistingServer: !process.env.CI,
          timeout: 120 * 1000,
        },
      }),
});
