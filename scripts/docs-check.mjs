// `npm run docs:check`: the API reference (/docs) as a reader meets it, in headless Chromium.
//
// Starts the Worker under `wrangler dev` (scripts/soak-server.mjs) on a fresh local D1 in a
// temporary folder holding one operator key, opens /docs in Debian's Chromium (driven by
// playwright-core) and checks that the reference rendered and works: the document's title shows,
// the search finds an operation and jumps to it, and try-it sends a request carrying the key typed
// into its key field to this origin, shows the 200 and keeps no copy of the key in the browser's
// storage. It fails on any console error, any uncaught page error, any same-origin request that
// failed or answered 4xx/5xx, and any request for another origin (each is aborted, logged and
// counted): the page must work offline. Every request URL is logged. A screenshot goes to DOCS_SCREENSHOT (default /tmp/stratus-docs.png). The whole run is
// bounded (DOCS_CHECK_SECONDS, default 180). Exit 0 when everything held, 1 when a check failed,
// 2 when the check itself could not run. Nothing but 127.0.0.1 is contacted.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { credentialInsert, formatToken, newSecret } from "./lib.mjs";
import { DevServer, freePort, wrangler } from "./soak-server.mjs";

const root = path.resolve(import.meta.dirname, "..");
const screenshot = process.env.DOCS_SCREENSHOT ?? "/tmp/stratus-docs.png";
const boundSeconds = Number(process.env.DOCS_CHECK_SECONDS ?? 180);
const chromiumPath = "/usr/bin/chromium";
// Chromium's own background traffic (updates, sync, field trials) stays off as well as the page's.
const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// Try-it is exercised on this operation: an operator key lists the (empty) catalog with a 200.
const tryIt = { method: "get", path: "/v1/products" };

const log = (line) => console.log(`docs-check: ${line}`);

const problems = [];
const fail = (what) => {
  problems.push(what);
  log(`FAIL ${what}`);
};

/** A fresh local D1 with the migrations and one operator key; returns the key. */
async function prepareState(dir, persistTo) {
  await wrangler(root, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo]);
  const operator = { id: crypto.randomUUID(), secret: newSecret() };
  const sql = await credentialInsert({
    ...operator,
    role: "operator",
    partnerId: null,
    subjectId: null,
    label: "docs-check",
  });
  const sqlFile = path.join(dir, "operator.sql");
  writeFileSync(sqlFile, `${sql}\n`);
  await wrangler(root, ["d1", "execute", "DB", "--local", "--persist-to", persistTo, `--file=${sqlFile}`]);
  return formatToken("operator", operator.id, operator.secret);
}

/** Watches everything the page does; returns the counts the verdict is made of. */
async function watch(context, page, origin) {
  const counts = { requests: 0, offOrigin: 0 };
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    counts.offOrigin++;
    fail(`request leaving the origin, aborted: ${url}`);
    return route.abort("blockedbyclient");
  });
  page.on("request", (request) => {
    counts.requests++;
    log(`request ${request.method()} ${request.url()}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) fail(`${response.status()} for ${response.url()}`);
  });
  page.on("requestfailed", (request) => {
    if (new URL(request.url()).origin === origin) {
      fail(`request failed: ${request.url()} (${request.failure()?.errorText})`);
    }
  });
  page.on("console", (message) => {
    if (message.type() === "error") fail(`console error: ${message.text()}`);
    else log(`console ${message.type()}: ${message.text()}`);
  });
  page.on("pageerror", (error) => fail(`page error: ${error.message}`));
  return counts;
}

/** The reader's path: the title, a search for an operation, try-it with a key. */
async function readReference(page, base, doc, key) {
  await page.goto(`${base}/docs`);
  await page.getByRole("heading", { name: doc.info.title, exact: true }).first().waitFor();
  log(`rendered: "${doc.info.title}" is shown`);

  const summary = doc.paths[tryIt.path]?.[tryIt.method]?.summary;
  if (!summary) throw new Error(`/openapi.json has no summary for ${tryIt.method} ${tryIt.path}`);
  await page
    .getByRole("button", { name: /Search/ })
    .first()
    .click();
  await page.keyboard.type(summary);
  await page.getByRole("option", { name: summary }).first().click();
  await page.getByRole("heading", { name: summary, exact: true }).first().waitFor();
  log(`search: "${summary}" found and shown`);

  await page.getByRole("button", { name: `Test Request (${tryIt.method} ${tryIt.path})` }).click();
  const client = page.getByRole("dialog");
  const keyField = client.getByRole("textbox", { name: "Value", exact: true });
  if (!(await keyField.isVisible())) await client.getByRole("button", { name: /^Authentication/ }).click();
  await keyField.fill(key);
  const sent = page.waitForRequest((r) => new URL(r.url()).pathname === tryIt.path);
  await client.getByRole("button", { name: /^Send/ }).first().click();
  const request = await sent;
  const response = await request.response();
  if (new URL(request.url()).origin !== base) fail(`try-it sent its request to ${request.url()}`);
  if (request.headers()["x-api-key"] !== key) fail("try-it did not send the typed key as X-Api-Key");
  if (response?.status() !== 200) fail(`try-it got ${response?.status()} from ${request.url()}`);
  await client.getByText("200 OK", { exact: true }).first().waitFor();
  log(`try-it: ${request.method()} ${request.url()} with the typed key answered ${response?.status()}`);
  const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
  if (stored.includes(key)) fail("the typed key was left in the browser's storage");
}

async function main() {
  const dir = mkdtempSync(path.join(tmpdir(), "stratus-docs-check-"));
  let server = null;
  let browser = null;
  const cleanUp = async () => {
    await browser?.close().catch(() => {});
    await server?.kill().catch(() => {});
  };
  const watchdog = setTimeout(async () => {
    log(`the check passed its bound of ${boundSeconds} s; wrangler's log is in ${dir}`);
    await cleanUp();
    process.exit(2);
  }, boundSeconds * 1000);
  watchdog.unref();

  let page;
  let counts;
  try {
    log("applying the D1 migrations");
    const persistTo = path.join(dir, "state");
    const key = await prepareState(dir, persistTo);
    const port = await freePort();
    server = new DevServer({
      tree: root,
      persistTo,
      port,
      inspectorPort: await freePort(),
      vars: { PUBLIC_URL: `http://127.0.0.1:${port}` },
      logFile: path.join(dir, "wrangler.log"),
    });
    log("starting wrangler dev");
    await server.start();
    const doc = await (
      await fetch(`${server.base}/openapi.json`, { signal: AbortSignal.timeout(30_000) })
    ).json();
    log(`the Worker answers at ${server.base}; opening /docs in Chromium`);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(30_000);
    page = await context.newPage();
    counts = await watch(context, page, server.base);
    try {
      await readReference(page, server.base, doc, key);
    } catch (error) {
      fail(`the reference did not work as read: ${error instanceof Error ? error.message : error}`);
    }
    await page.screenshot({ path: screenshot });
    log(`screenshot: ${screenshot}`);
  } catch (error) {
    log(`could not run: ${error instanceof Error ? error.message : error}; wrangler's log is in ${dir}`);
    await cleanUp();
    process.exit(2);
  }
  await cleanUp();
  rmSync(dir, { recursive: true, force: true });
  log(`${counts.requests} requests, ${counts.offOrigin} leaving the origin, ${problems.length} problems`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}

await main();
