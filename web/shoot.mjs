// Opens the SAGE live view in headless Chromium (Debian's, through playwright-core), waits until
// the page has rendered its layout and the WebSocket brings messages, lets the panels fill for
// --settle seconds, then screenshots the page.
//
//   node web/shoot.mjs --url URL --out DIR [--settle 20] [--timeout 30] [--load-timeout 90]
//                      [--chromium /usr/bin/chromium] [--width 1600 --height 1000]
//
// --timeout: seconds to wait for the first WebSocket message; --load-timeout: for the page and
// its panels (Studio's bundle is 56 MB of JavaScript: slow on a busy machine).
//
// Writes DIR/live_view.png and DIR/result.json: {ok, error, status, panels: [{id, type, box,
// canvas}], console, seconds}: where each panel and its largest canvas lie on the screenshot
// (CSS pixels = screenshot pixels). Exit 0 when the page connected, brought messages and laid
// out its panels; 1 otherwise (result.json says why).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    out: { type: "string" },
    settle: { type: "string", default: "20" },
    timeout: { type: "string", default: "30" },
    "load-timeout": { type: "string", default: "90" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    width: { type: "string", default: "1600" },
    height: { type: "string", default: "1000" },
  },
});
if (!args.url || !args.out) {
  console.error("usage: node shoot.mjs --url URL --out DIR [--settle S] [--timeout S]");
  process.exit(2);
}
mkdirSync(args.out, { recursive: true });
const timeoutMs = Number(args.timeout) * 1000;
const loadTimeoutMs = Number(args["load-timeout"]) * 1000;
const settleMs = Number(args.settle) * 1000;
const result = { ok: false, error: undefined, status: undefined, panels: [], console: [],
  seconds: {} };
const started = Date.now();
const mark = (name) => { result.seconds[name] = (Date.now() - started) / 1000; };

// Headless without a GPU: WebGL (the Image and 3D panels) runs on SwiftShader.
const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
  ],
});
try {
  // A new context is a fresh profile (Playwright gives it its own user-data dir).
  const context = await browser.newContext({
    viewport: { width: Number(args.width), height: Number(args.height) },
    deviceScaleFactor: 1,
  });
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") {
      result.console.push(`${msg.type()}: ${msg.text()}`.slice(0, 500));
    }
  });
  page.on("pageerror", (err) => result.console.push(`pageerror: ${err.message}`.slice(0, 500)));

  mark("browser");
  await page.goto(args.url, { waitUntil: "load", timeout: loadTimeoutMs });
  mark("loaded");
  await page.waitForFunction(() => window.sageLiveView?.state !== "loading", undefined,
    { timeout: loadTimeoutMs });
  mark("rendered");
  result.status = await page.evaluate(() => ({ ...window.sageLiveView }));
  if (result.status.state === "error") {
    throw new Error(`page: ${result.status.error}`);
  }
  // Event-driven: resolves at the first message the WebSocket brings. Without one the panels
  // are still shot (empty), and the result says so.
  try {
    await page.waitForFunction(() => window.sageLiveView.messages > 0, undefined,
      { timeout: timeoutMs, polling: 100 });
  } catch {
    result.error = `no message from the WebSocket within ${args.timeout} s`;
  }
  mark("first_message");
  const connectedAt = Date.now();
  // Every panel of the layout mounted with a canvas or content (Studio tags each panel's root
  // with its id).
  await page.waitForSelector('[data-testid^="panel-mouseenter-container "]',
    { timeout: loadTimeoutMs });
  await page.waitForTimeout(Math.max(0, settleMs - (Date.now() - connectedAt)));

  mark("settled");
  await page.screenshot({ path: join(args.out, "live_view.png") });
  // Where each panel and its drawing (its largest canvas: the image panel's picture, the plot's
  // chart) lie on that screenshot, in one look at the page.
  result.panels = await page.evaluate(() => {
    const box = (el) => {
      const r = el.getBoundingClientRect();
      return { x: r.x, y: r.y, width: r.width, height: r.height };
    };
    return [...document.querySelectorAll('[data-testid^="panel-mouseenter-container "]')]
      .map((root) => {
        const id = root.getAttribute("data-testid").split(" ")[1] ?? "";
        const canvases = [...root.querySelectorAll("canvas")].map(box)
          .filter((b) => b.width > 0 && b.height > 0)
          .sort((a, b) => b.width * b.height - a.width * a.height);
        return { id, type: id.split("!")[0], box: box(root), canvas: canvases[0] ?? null };
      });
  });
  mark("shot");
  result.status = await page.evaluate(() => ({ ...window.sageLiveView }));
  result.ok = result.error === undefined && result.status.connected
    && result.panels.length > 0;
  if (!result.ok && result.error === undefined) {
    result.error = `connected=${result.status.connected}, ${result.panels.length} panels`;
  }
} catch (err) {
  result.error = String(err?.message ?? err).split("\n")[0];
  try {
    const [page] = browser.contexts()[0]?.pages() ?? [];
    if (page) {
      await page.screenshot({ path: join(args.out, "live_view.png") });
      result.status = await page.evaluate(() => ({ ...window.sageLiveView }));
    }
  } catch {
    // the page is gone: result.json says what failed first
  }
} finally {
  await browser.close();
}
writeFileSync(join(args.out, "result.json"), JSON.stringify(result, null, 2));
console.log(JSON.stringify({ ok: result.ok, error: result.error, panels: result.panels.length }));
process.exit(result.ok ? 0 : 1);
