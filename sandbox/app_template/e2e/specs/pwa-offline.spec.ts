import { expect, test } from "@playwright/test";

// The installed app must keep working without a network: the service worker stores the web
// fonts in the "pp-fonts" cache and answers navigations with the offline page.
test.describe("PWA works offline", () => {
  test("fonts are cached and the offline page shows when the network is gone", async ({
    page,
    context,
  }) => {
    await page.goto("/");
    await page.waitForLoadState("networkidle");

    const registered = await page.evaluate(async () => {
      if (!("serviceWorker" in navigator)) return false;
      const registration = await navigator.serviceWorker.ready;
      return registration.active !== null;
    });
    expect(registered).toBe(true);

    const cachedPaths = await page.evaluate(async () => {
      const fontCache = await caches.open("pp-fonts");
      const requests = await fontCache.keys();
      return requests.map((cached) => new URL(cached.url).pathname);
    });
    expect(cachedPaths.filter((cachedPath) => cachedPath.endsWith(".woff2")).length).toBeGreaterThan(0);

    await page.goto("/offline");
    await page.waitForLoadState("networkidle");

    await context.setOffline(true);
    try {
      await page.reload({ waitUntil: "domcontentloaded" });
      await expect(page.getByRole("heading", { name: /you're offline/i })).toBeVisible();
    } finally {
      await context.setOffline(false);
    }
  });
});
