// End-to-end: the API reference page (/docs) in headless Chromium, rendered by the
// vendored Stoplight Elements from the server's own /v1/openapi.json.
//
// Every tag of the document is in the page; `POST /v1/contacts` shows each field of
// its request body and the bearer scheme; no request leaves the server's origin and
// the page's Content-Security-Policy is never violated; without JavaScript the page
// links to the document. Screenshot: tests/e2e/screenshots/reference.png.
//
// Run with tests/e2e/run (installs Chromium and npm packages, builds the binary).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const BIN = process.env.DIALTONE_BIN ?? join(root, "target/debug/dialtone");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = join(here, "screenshots");

let dataDir, server, base, browser, doc;
const serverLog = [];

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function waitHealthy(url) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server did not start:\n${serverLog.join("")}`);
}

/** A page that records every request it makes and every problem it reports. */
async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, ...options });
  const page = await context.newPage();
  page.requests = [];
  page.problems = [];
  page.on("request", (r) => page.requests.push(r.url()));
  page.on("console", (m) => { if (m.type() === "error") page.problems.push(m.text()); });
  page.on("pageerror", (e) => page.problems.push(String(e)));
  return page;
}

/** Requests that went anywhere but this server (a blocked attempt counts too). */
const offOrigin = (page) => page.requests.filter((u) => new URL(u).origin !== base);

/** The document's tags: those declared and those its operations use. */
function tags() {
  const names = new Set((doc.tags ?? []).map((t) => t.name));
  for (const item of Object.values(doc.paths)) {
    for (const op of Object.values(item)) for (const t of op?.tags ?? []) names.add(t);
  }
  return [...names];
}

/** A schema with its `$ref` followed (components only). */
function resolveRef(schema) {
  while (schema?.$ref) schema = schema.$ref.split("/").slice(1).reduce((o, k) => o[k], doc);
  return schema;
}

/** The rendered reference (Elements' custom element: its sidebar and content). */
const sidebar = (page) => page.locator("elements-api");

async function openReference(page) {
  const resp = await page.goto(`${base}/docs`);
  assert.equal(resp.status(), 200);
  // Rendered: the first tag is in the sidebar.
  await sidebar(page).getByText(tags()[0], { exact: true }).first().waitFor({ timeout: 30000 });
  return resp;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "dialtone-e2e-reference-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ["--data-dir", dataDir, "serve", "--listen", `127.0.0.1:${port}`],
    { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (d) => serverLog.push(String(d)));
  server.stderr.on("data", (d) => serverLog.push(String(d)));
  await waitHealthy(base);
  doc = await (await fetch(`${base}/v1/openapi.json`)).json();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("the reference renders every tag of the document, from this server only", async () => {
  const page = await newPage();
  const resp = await openReference(page);
  const csp = resp.headers()["content-security-policy"] ?? "";
  assert.match(csp, /default-src 'none'/, csp);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/, csp);

  const expected = tags();
  assert.ok(expected.length > 0, "the document has tags");
  for (const tag of expected) {
    assert.ok(await sidebar(page).getByText(tag, { exact: true }).first().isVisible(),
      `tag ${tag} is not shown`);
  }
  // The renderer's assets are the versioned, long-cached copies served by the binary.
  const assets = page.requests.filter((u) => new URL(u).pathname.startsWith("/assets/elements-"));
  assert.equal(assets.length, 2, assets.join("\n"));
  for (const url of assets) {
    const r = await fetch(url);
    assert.equal(r.status, 200, url);
    assert.match(r.headers.get("cache-control") ?? "", /max-age=31536000.*immutable/, url);
  }
  await page.screenshot({ path: join(SHOTS, "reference.png") });
  assert.deepEqual(offOrigin(page), [], "requests outside the server's origin");
  assert.deepEqual(page.problems, [], "console errors (a CSP violation is one)");
  await page.context().close();
});

test("POST /v1/contacts shows its request body fields and the bearer scheme", async () => {
  const op = doc.paths["/v1/contacts"].post;
  const body = resolveRef(op.requestBody.content["application/json"].schema);
  const fields = Object.keys(body.properties ?? {});
  assert.ok(fields.includes("first_name") && fields.includes("phone_number"), fields.join());
  const schemes = Object.values(doc.components.securitySchemes ?? {});
  assert.ok(schemes.some((s) => s.type === "http" && s.scheme === "bearer"), "a bearer scheme");

  const page = await newPage();
  await openReference(page);
  await sidebar(page).getByText(op.tags[0], { exact: true }).first().click();
  await sidebar(page).getByText(op.summary, { exact: true }).first().click();
  const main = page.locator("elements-api");
  // The operation's header: its method and path.
  await main.getByText("/v1/contacts", { exact: true }).first().waitFor({ timeout: 15000 });
  // The request part of the operation (before its responses) lists every body field.
  const text = await main.innerText();
  const start = text.indexOf("\nRequest\n");
  const end = text.indexOf("\nResponses\n", start);
  assert.ok(start >= 0 && end > start, `no request section:\n${text.slice(0, 2000)}`);
  const request = text.slice(start, end).split("\n").map((l) => l.trim());
  for (const field of fields) {
    assert.ok(request.includes(field), `request body field ${field} is not shown:\n${request.join("\n")}`);
  }
  assert.match(text.slice(start, end), /Security:\s*Bearer/, "the bearer scheme is not shown");
  for (const field of fields) {
    assert.ok(await main.getByText(field, { exact: true }).first().isVisible(), `${field} is not visible`);
  }
  await page.screenshot({ path: join(SHOTS, "reference-create-contact.png") });
  assert.deepEqual(offOrigin(page), [], "requests outside the server's origin");
  assert.deepEqual(page.problems, [], "console errors (a CSP violation is one)");
  await page.context().close();
});

test("without JavaScript the page links to the OpenAPI document", async () => {
  const page = await newPage({ javaScriptEnabled: false });
  await page.goto(`${base}/docs`);
  const link = page.getByRole("link", { name: "/v1/openapi.json" });
  assert.ok(await link.isVisible(), "a visible link to the document");
  assert.equal(await link.getAttribute("href"), "/v1/openapi.json");
  assert.deepEqual(offOrigin(page), []);
  await page.context().close();
});
