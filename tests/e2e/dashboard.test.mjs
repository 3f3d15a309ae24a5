// End-to-end: the real `dialtone` binary, a person in headless Chromium, the API by fetch.
//
// Sign in; create a read-only key in the modal; read it once; the API accepts it for a
// read and refuses a write with 403; reload and find only the last four and the badge;
// revoke it and see the API answer 401 (the same with JavaScript off, through the
// pages that stand in for the dialogs; so too rotating a key, setting its limits and
// rotating a webhook's secret). Then every other page: contacts (create,
// search, note; the same with JavaScript off), paging of campaigns and a contact's
// timeline without JavaScript, conversations (send), phone numbers (buy, route,
// release), agents (create, edit, delete), billing, the audit log, analytics (charts and
// their table); axe-core on every
// page (zero serious or critical violations) and a phone-sized screen. Screenshots of
// every page go to tests/e2e/screenshots/ (committed; each run rewrites them).
//
// Run with tests/e2e/run (installs Chromium and npm packages, builds the binary).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const BIN = process.env.DIALTONE_BIN ?? join(root, "target/debug/dialtone");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = join(here, "screenshots");
// axe-core (npm, pinned in package.json), injected into each page under test.
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const EMAIL = "owner@example.com";
const PASSWORD = "correct horse battery staple";

let dataDir, server, base, browser, orgId;
const serverLog = [];

function cli(args, input) {
  const r = spawnSync(BIN, ["--data-dir", dataDir, ...args], { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`dialtone ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

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

const api = (path, key, init = {}) =>
  fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...(init.headers ?? {}) },
  });

async function newPage(viewport = { width: 1360, height: 900 }, options = {}) {
  const context = await browser.newContext({ viewport, ...options });
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (m) => { if (m.type() === "error") page.problems.push(m.text()); });
  page.on("pageerror", (e) => page.problems.push(String(e)));
  return page;
}

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

/** axe-core on the page as it stands: the serious and critical violations, described. */
async function axeProblems(page) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** Submits a form by clicking `button` and waits for the page the POST leads to. */
async function submitting(page, button) {
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), button.click()]);
}

async function signIn(page) {
  await page.goto(`${base}/dashboard/keys`);
  assert.match(page.url(), /\/login\?next=/, "signed-out visitors are sent to sign in");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/dashboard/keys`);
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "dialtone-e2e-"));
  orgId = JSON.parse(cli(["org", "create", "--name", "Acme Robotics", "--json"])).id;
  cli(["user", "create", "--org", orgId, "--email", EMAIL, "--password-stdin", "--role", "owner"], `${PASSWORD}\n`);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ["--data-dir", dataDir, "serve", "--listen", `127.0.0.1:${port}`,
    "--usage-flush-ms", "200", "--simulator-step-ms", "100", "--webhook-allow-private"], { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (d) => serverLog.push(String(d)));
  server.stderr.on("data", (d) => serverLog.push(String(d)));
  await waitHealthy(base);
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

test("a read-only key: created in the modal, shown once, reads 200, writes 403, revoked 401", async () => {
  const page = await newPage();
  await page.goto(`${base}/login`);
  await shot(page, "01-sign-in");
  await signIn(page);
  await shot(page, "02-keys-empty");

  // The modal: a real <dialog>, opened by the button.
  await page.getByRole("button", { name: "+ New API Key" }).click();
  const dialog = page.locator("dialog#new-key");
  assert.equal(await dialog.evaluate((d) => d.open && d.matches(":modal")), true);
  await page.getByLabel("Name").fill("Claude Desktop");
  await page.getByLabel("Read-only key").check();
  await page.locator("details.perms summary").click();
  assert.equal(await page.locator("#perm-contacts option[value=write]").isDisabled(), true,
    "no write access offered for a read-only key");
  await shot(page, "03-new-key-modal");
  // Every visible field of the page and the modal has a label.
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
      .filter((el) => !(el.labels?.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
      .map((el) => el.outerHTML));
  assert.deepEqual(unlabelled, [], "fields without a label");
  await page.getByRole("button", { name: "Create key" }).click();

  // The one-time reveal, with its warning, copy button and badge.
  const reveal = page.locator("dialog#created-key");
  await reveal.waitFor();
  const secret = await page.locator("#new-secret").inputValue();
  assert.match(secret, /^dt_live_[0-9A-Za-z]{36}$/);
  assert.match(await reveal.innerText(), /cannot be shown again/);
  assert.equal(await reveal.locator(".badge-ro", { hasText: "Read-only" }).count(), 1);
  await page.getByRole("button", { name: "Copy" }).click();
  await page.getByText("Copied to the clipboard.").waitFor();
  await shot(page, "04-key-created");

  // The API: reads work, writes are refused.
  let r = await api("/v1/contacts", secret);
  assert.equal(r.status, 200);
  r = await api("/v1/contacts", secret, { method: "POST", body: JSON.stringify({ first_name: "Ada" }) });
  assert.equal(r.status, 403);
  assert.equal((await r.json()).error, "INSUFFICIENT_PERMISSIONS");

  // Reload: the list, only the last four and the badge; no second key was made.
  await page.reload();
  assert.equal(page.url(), `${base}/dashboard/keys`);
  const html = await page.content();
  assert.ok(!html.includes(secret), "the secret is gone after a reload");
  const rows = page.locator("#active-keys tbody tr");
  assert.equal(await rows.count(), 1);
  const row = rows.first();
  assert.match(await row.innerText(), new RegExp(`dt_live_…${secret.slice(-4)}`));
  assert.equal(await row.locator(".badge-ro").innerText(), "Read-only");
  await new Promise((res) => setTimeout(res, 400)); // let usage flush (200 ms)
  await page.reload();
  await shot(page, "05-keys-list");

  // Revoke, with a confirmation that says it is immediate and permanent.
  await page.getByRole("button", { name: "Revoke Claude Desktop" }).click();
  const confirm = page.locator("dialog[id^=revoke-][open]");
  assert.match(await confirm.innerText(), /immediate and permanent/);
  await shot(page, "06-revoke-confirm");
  await confirm.getByRole("button", { name: "Revoke key" }).click();
  await page.locator("#notice").waitFor();
  r = await api("/v1/contacts", secret);
  assert.equal(r.status, 401);
  assert.deepEqual(await r.json(), { statusCode: 401, message: "Unauthorized", error: "Unauthorized" });
  await page.locator("details.revoked summary").click();
  assert.equal(await page.locator("#active-keys").count(), 0);
  assert.match(await page.locator("#revoked-keys").innerText(), /revoked/);
  assert.match(await page.locator("#audit-log").innerText(), /Revoked key[\s\S]*Created key/);
  await shot(page, "07-after-revoke");
  assert.deepEqual(page.problems, [], "no console errors (CSP, scripts)");
  await page.context().close();
});

test("keyboard: the modal opens from the keyboard, traps focus and closes with Escape", async () => {
  const page = await newPage();
  await signIn(page);
  const button = page.getByRole("button", { name: "+ New API Key" });
  await button.focus();
  await page.keyboard.press("Enter");
  const dialog = page.locator("dialog#new-key");
  assert.equal(await dialog.evaluate((d) => d.open), true);
  assert.equal(await page.evaluate(() => document.activeElement?.id), "key-name", "focus starts on the name");
  // The focused control shows a visible focus ring.
  await page.keyboard.press("Tab");
  const ring = await page.evaluate(() => getComputedStyle(document.activeElement).boxShadow);
  assert.notEqual(ring, "none");
  await page.keyboard.press("Escape");
  assert.equal(await dialog.evaluate((d) => d.open), false);
  await page.context().close();
});

test("calls, a call with its transcript and recording, webhooks, and a phone-sized screen", async () => {
  const testKey = cli(["keys", "create", "--org", orgId, "--name", "Simulator", "--test"]).trim();
  const placed = await (await api("/v1/calls", testKey, {
    method: "POST", body: JSON.stringify({ to: "+14155550123" }),
  })).json();
  for (let i = 0; i < 100; i++) {
    const c = await (await api(`/v1/calls/${placed.id}`, testKey)).json();
    if (c.status === "completed") break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/dashboard/calls`);
  await page.getByRole("button", { name: "Test mode" }).click();
  await page.waitForURL(`${base}/dashboard/calls`);
  await page.locator(".test-banner").waitFor();
  await page.getByRole("link", { name: placed.id }).waitFor();
  // Filters (htmx swaps the results in place and updates the URL).
  await page.getByLabel("Status").selectOption("failed");
  await page.waitForURL(/status=failed/);
  await page.getByText("No calls match.").waitFor();
  await page.getByLabel("Status").selectOption("completed");
  await page.getByRole("link", { name: placed.id }).waitFor();
  await shot(page, "08-calls");
  await page.getByRole("link", { name: placed.id }).click();
  await page.locator("audio").waitFor();
  assert.ok(await page.locator(".transcript li").count() > 0, "a transcript");
  const src = await page.locator("audio").getAttribute("src");
  const media = await fetch(`${base}${src}`);
  assert.equal(media.status, 200);
  assert.match(media.headers.get("content-type"), /audio/);
  await shot(page, "09-call-detail");
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.locator("h1", { hasText: "Webhooks" }).waitFor();
  await shot(page, "10-webhooks");
  assert.deepEqual(page.problems, [], "no console errors");
  await page.context().close();

  const phone = await newPage({ width: 390, height: 844 });
  await signIn(phone);
  await shot(phone, "11-keys-phone");
  await phone.context().close();
});

test("webhooks: an endpoint, a test ping delivered, redeliver, rotate the secret once", async (t) => {
  const received = [];
  const receiver = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => { received.push(JSON.parse(body)); res.end("ok"); });
  });
  await new Promise((ok) => receiver.listen(0, "127.0.0.1", ok));
  // Closed whatever happens, so a failure cannot keep the test process alive.
  t.after(() => receiver.close());
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/hooks`;
  const key = cli(["keys", "create", "--org", orgId, "--name", "Webhook admin"]).trim();
  const created = await (await api("/v1/webhooks", key, {
    method: "POST",
    body: JSON.stringify({ url: hookUrl, events: ["call.completed", "message.received"], description: "CRM sync" }),
  })).json();
  assert.match(created.id, /^whk_/);

  const page = await newPage();
  await signIn(page);
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.getByRole("link", { name: hookUrl }).click();
  // Each action is a form post answered by a redirect: wait for that page before the
  // next step (a reload racing the redirect fails with "not attached").
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.getByRole("button", { name: "Send test event" }).click()]);
  for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(received[0]?.type, "webhook.test");
  await page.goto(`${base}/dashboard/webhooks/${created.id}`);
  await page.locator("#deliveries .badge-succeeded").first().waitFor();
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.getByRole("button", { name: "Redeliver" }).first().click()]);
  for (let i = 0; i < 100 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(received.length, 2, "redelivered");
  await page.goto(`${base}/dashboard/webhooks/${created.id}`);
  await shot(page, "12-webhook-endpoint");
  await page.getByRole("button", { name: "Rotate secret" }).click();
  await page.locator("dialog#rotate-secret").getByRole("button", { name: "Rotate secret" }).click();
  const secret = await page.locator("#new-secret").inputValue();
  assert.match(secret, /^whsec_/);
  await shot(page, "13-webhook-secret-rotated");
  await page.goto(`${base}/dashboard/webhooks/${created.id}`);
  assert.ok(!(await page.content()).includes(secret), "the new secret is shown once");
  assert.deepEqual(page.problems, [], "no console errors");
  await page.context().close();
});

test("webhooks: an endpoint created on the page with two events receives a delivery; disable, enable", async (t) => {
  const received = [];
  const receiver = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => { received.push(JSON.parse(body)); res.end("ok"); });
  });
  await new Promise((ok) => receiver.listen(0, "127.0.0.1", ok));
  t.after(() => receiver.close());
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/created-on-page`;
  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/dashboard/webhooks`);
  await page.getByLabel("URL").fill(hookUrl);
  await page.getByLabel("Description (optional)").fill("Made in the dashboard");
  await page.locator("#ev-contact\\.created").check();
  await page.locator("#ev-call\\.completed").check();
  await shot(page, "33-webhook-new");
  await submitting(page, page.getByRole("button", { name: "Create endpoint" }));
  const secret = await page.locator("#new-secret").inputValue();
  assert.match(secret, /^whsec_/);
  assert.equal(await page.locator(".chip").count(), 2, "two events");
  await shot(page, "34-webhook-created");
  // A contact made through the API is delivered to the receiver, signed.
  const key = cli(["keys", "create", "--org", orgId, "--name", "Webhook e2e"]).trim();
  const made = await (await api("/v1/contacts", key, {
    method: "POST", body: JSON.stringify({ first_name: "Hook", last_name: "Target" }),
  })).json();
  for (let i = 0; i < 200 && !received.some((e) => e.data?.object?.id === made.id); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const event = received.find((e) => e.data?.object?.id === made.id);
  assert.equal(event?.type, "contact.created", "the delivery arrived");
  // Disable and enable again, from the endpoint's page.
  await submitting(page, page.getByRole("button", { name: "Disable" }));
  await page.getByRole("button", { name: "Enable" }).waitFor();
  assert.ok(!(await page.content()).includes(secret), "the secret is shown once");
  await submitting(page, page.getByRole("button", { name: "Enable" }));
  await page.getByRole("button", { name: "Disable" }).waitFor();
  assert.deepEqual(page.problems, [], "no console errors");
  await page.context().close();
});

/** One JSON-RPC exchange with `dialtone mcp` over stdio: requests in, answers by id. */
async function mcpStdio(env, requests) {
  const child = spawn(BIN, ["mcp"], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  const answers = new Map();
  let buf = "", errText = "";
  child.stderr.on("data", (d) => (errText += d));
  child.stdout.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) { const m = JSON.parse(line); if (m.id !== undefined) answers.set(m.id, m); }
    }
  });
  try {
    for (const r of requests) {
      child.stdin.write(JSON.stringify({ jsonrpc: "2.0", ...r }) + "\n");
      if (r.id === undefined) continue;
      for (let i = 0; i < 200 && !answers.has(r.id); i++) await new Promise((ok) => setTimeout(ok, 50));
      if (!answers.has(r.id)) throw new Error(`no answer to ${r.method}: ${errText}`);
    }
  } finally {
    child.kill("SIGTERM");
  }
  return answers;
}

test("integrations: a read-only key made on the page, pasted into the MCP stdio server", async () => {
  const page = await newPage();
  await signIn(page);
  await page.getByRole("link", { name: "Integrations" }).click();
  await page.locator("h1", { hasText: "Integrations" }).waitFor();
  assert.equal(await page.locator("#openapi-link").getAttribute("href"), "/v1/openapi.json");
  assert.equal(await page.locator("#docs-link").getAttribute("href"), "/docs");
  assert.match(await page.locator("#hook-example").inputValue(), /\/v1\/hooks/);
  await shot(page, "35-integrations");
  await page.getByLabel("Key name").fill("Claude Desktop e2e");
  await submitting(page, page.getByRole("button", { name: "Create a read-only key and fill it in" }));
  const key = await page.locator("#new-secret").inputValue();
  assert.match(key, /^dt_live_/);
  const config = JSON.parse(await page.locator("#cfg-claude").inputValue());
  const env = config.mcpServers.dialtone.env;
  assert.equal(env.DIALTONE_API_KEY, key, "the key is filled in");
  assert.equal(env.DIALTONE_API_URL, base);
  assert.equal(JSON.parse(await page.locator("#cfg-vscode").inputValue()).servers.dialtone.env.DIALTONE_API_KEY, key);
  await shot(page, "36-integrations-key");
  assert.deepEqual(page.problems, [], "no console errors");
  await page.context().close();

  // The configuration as a client runs it: `dialtone mcp` with the env it names.
  const answers = await mcpStdio(env, [
    { id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } } },
    { method: "notifications/initialized" },
    { id: 2, method: "tools/list" },
    { id: 3, method: "tools/call", params: { name: "whoami", arguments: {} } },
  ]);
  const tools = answers.get(2)?.result?.tools?.map((t) => t.name) ?? [];
  assert.ok(tools.includes("whoami") && tools.includes("list_contacts"), `tools: ${tools}`);
  assert.ok(!tools.includes("create_contact"), "a read-only key sees no write tool");
  const who = JSON.stringify(answers.get(3)?.result ?? answers.get(3));
  assert.match(who, /read_only\\*"\s*:\s*true/, `whoami: the key made on the page is read-only: ${who}`);
});

test("least privilege: a key's row says what it used, and restricting it makes a narrower key shown once", async () => {
  const old = cli(["keys", "create", "--org", orgId, "--name", "CRM sync",
    "--permissions", "contacts:write,calls:read,billing:read"]).trim();
  assert.equal((await api("/v1/contacts", old)).status, 200);
  assert.equal((await api("/v1/calls", old)).status, 200);
  await new Promise((res) => setTimeout(res, 400)); // let usage flush (200 ms)

  const page = await newPage();
  await signIn(page);
  const row = page.locator("#active-keys tbody tr", { hasText: "CRM sync" });
  assert.match(await row.innerText(), /used only contacts:read and calls:read in 30 days/);
  await row.getByRole("button", { name: "Restrict CRM sync to what it uses" }).click();
  const dialog = page.locator("dialog[id^=narrow-][open]");
  assert.match(await dialog.innerText(), /holding only contacts:read,calls:read/);
  await shot(page, "14-restrict-to-usage");
  await dialog.getByRole("button", { name: "Rotate into a restricted key" }).click();

  const reveal = page.locator("dialog#created-key");
  await reveal.waitFor();
  assert.match(await reveal.innerText(), /the new key holds only contacts:read, calls:read/);
  const secret = await page.locator("#new-secret").inputValue();
  const me = await (await api("/v1/me", secret)).json();
  assert.deepEqual(me.permissions, ["contacts:read", "calls:read"]);
  assert.equal((await api("/v1/contacts", secret)).status, 200);
  assert.equal((await api("/v1/billing/wallet", secret)).status, 403);
  // The old key is kept until revoked, as in any rotation.
  assert.equal((await api("/v1/billing/wallet", old)).status, 200);
  await page.reload();
  assert.ok(!(await page.content()).includes(secret), "shown once");
  assert.match(await page.locator("#audit-log").innerText(), /Rotated key/);
  assert.deepEqual(page.problems, [], "no console errors (CSP, scripts)");
  await page.context().close();
});

/** A native app's loopback redirect URI: where the browser is sent, and what arrived. */
async function oauthCallback(t) {
  const arrived = [];
  // Only the redirect counts (the browser may also ask this server for a favicon).
  const callback = createHttpServer((req, res) => {
    if (req.url.startsWith("/callback")) arrived.push(req.url);
    res.end("You can close this window.");
  });
  await new Promise((ok) => callback.listen(0, "127.0.0.1", ok));
  t.after(() => callback.close());
  return { redirect: `http://127.0.0.1:${callback.address().port}/callback`, arrived };
}

test("OAuth consent: sign in on the way, read-only by default, Allow redirects with a code, a step-up pre-selected", async (t) => {
  const { createHash, randomBytes } = await import("node:crypto");
  const { redirect, arrived } = await oauthCallback(t);
  const reg = await (await fetch(`${base}/oauth/register`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_name: "Browser Assistant", redirect_uris: [redirect] }),
  })).json();
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const q = new URLSearchParams({ response_type: "code", client_id: reg.client_id, redirect_uri: redirect,
    state: "e2e-state", code_challenge: challenge, code_challenge_method: "S256", scope: "read write",
    resource: `${base}/mcp` });

  const page = await newPage();
  await page.goto(`${base}/oauth/authorize?${q}`);
  assert.match(page.url(), /\/login\?next=%2Fdashboard%2Foauth%2Fauthorize/, "signed-out people sign in first");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/dashboard\/oauth\/authorize\?/);
  assert.equal(await page.locator("#client-name").textContent(), "Browser Assistant");
  assert.equal(await page.locator("#redirect-host").textContent(), "127.0.0.1");
  assert.equal(await page.getByLabel(/Read-only/).isChecked(), true, "read-only is the default");
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
      .filter((el) => !(el.labels?.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
      .map((el) => el.outerHTML));
  assert.deepEqual(unlabelled, [], "fields without a label");
  await shot(page, "30-oauth-consent");
  await page.getByRole("button", { name: "Allow" }).click();
  for (let i = 0; i < 100 && arrived.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(arrived.length, 1, "the browser went back to the client");
  const back = new URL(arrived[0], redirect).searchParams;
  assert.equal(back.get("state"), "e2e-state");
  assert.equal(back.get("iss"), base);

  const tokens = await (await fetch(`${base}/oauth/token`, {
    method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code: back.get("code"), redirect_uri: redirect,
      client_id: reg.client_id, code_verifier: verifier, resource: `${base}/mcp` }),
  })).json();
  assert.equal(tokens.scope, "read");
  const mcp = await fetch(`${base}/mcp`, {
    method: "POST",
    headers: { authorization: `Bearer ${tokens.access_token}`, accept: "application/json, text/event-stream",
      "content-type": "application/json", "mcp-protocol-version": "2025-11-25" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "e2e", version: "1" } } }),
  });
  assert.equal(mcp.status, 200);
  assert.equal((await api("/v1/contacts", tokens.access_token)).status, 401, "the token is for /mcp only");

  // The grant on the keys page, as an OAuth app.
  await page.goto(`${base}/dashboard/keys`);
  const row = page.locator("#active-keys tr", { hasText: "Browser Assistant" });
  await row.locator(".badge-oauth").waitFor();
  await shot(page, "31-keys-with-oauth-app");

  // A step-up: the app asks again for what it holds plus messages:write (the scope of
  // a 403 insufficient_scope); the page pre-selects exactly that.
  const stepVerifier = randomBytes(32).toString("base64url");
  const stepUp = new URLSearchParams({ response_type: "code", client_id: reg.client_id, redirect_uri: redirect,
    state: "e2e-step-up", code_challenge: createHash("sha256").update(stepVerifier).digest("base64url"),
    code_challenge_method: "S256", scope: "read messages:write", resource: `${base}/mcp` });
  await page.goto(`${base}/oauth/authorize?${stepUp}`);
  await page.waitForURL(/\/dashboard\/oauth\/authorize\?/);
  assert.equal(await page.getByLabel(/Choose resource by resource/).isChecked(), true, "the request is pre-selected");
  assert.equal(await page.getByLabel(/Read-only/).isChecked(), false);
  assert.equal(await page.locator("#perm-messages").inputValue(), "write");
  assert.equal(await page.locator("#perm-calls").inputValue(), "read");
  assert.match(await page.locator("#asked-writes").textContent(), /Messages/);
  assert.deepEqual(await axeProblems(page), [], "axe on the step-up consent");
  await shot(page, "32-oauth-step-up-consent");
  await page.getByRole("button", { name: "Allow" }).click();
  for (let i = 0; i < 100 && arrived.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(arrived.length, 2, "the browser went back to the client again");
  const stepped = await (await fetch(`${base}/oauth/token`, {
    method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code",
      code: new URL(arrived[1], redirect).searchParams.get("code"), redirect_uri: redirect,
      client_id: reg.client_id, code_verifier: stepVerifier, resource: `${base}/mcp` }),
  })).json();
  assert.ok(stepped.scope.split(" ").includes("messages:write"), stepped.scope);
  assert.ok(!stepped.scope.split(" ").includes("calls:write"), stepped.scope);
  assert.deepEqual(page.problems, [], "no console errors");
  await page.context().close();
});

test("the MCP Python SDK signs in through this browser: read-only by default, reads, no write, revoked on the keys page", async (t) => {
  const python = process.env.DIALTONE_TEST_MCP_PYTHON;
  assert.ok(python, "DIALTONE_TEST_MCP_PYTHON names the Python with the MCP SDK (tests/e2e/run sets it)");
  const { redirect, arrived } = await oauthCallback(t);
  const page = await newPage();
  await signIn(page);

  // The SDK's OAuthClientProvider does the assistant's part; at its redirect and at the
  // revocation it hands over to this browser, one JSON line each way.
  const plan = { url: `${base}/mcp`, base, redirect_uri: redirect, client_name: "Python Assistant",
    scenario: "browser", consent: "browser" };
  const sdk = spawn(python, [join(root, "tests/mcp/oauth_drive.py"), JSON.stringify(plan)],
    { stdio: ["pipe", "pipe", "pipe"] });
  t.after(() => sdk.kill("SIGKILL"));
  let stderr = "";
  sdk.stderr.on("data", (d) => { stderr += String(d); });
  const lines = createInterface({ input: sdk.stdout });
  const reply = (message) => sdk.stdin.write(`${JSON.stringify(message)}\n`);
  let report;
  for await (const line of lines) {
    const message = JSON.parse(line);
    if (message.authorize) {
      await page.goto(message.authorize);
      await page.waitForURL(/\/dashboard\/oauth\/authorize\?/);
      assert.equal(await page.locator("#client-name").textContent(), "Python Assistant");
      assert.equal(await page.getByLabel(/Read-only/).isChecked(), true, "read-only is the default");
      await shot(page, "56-oauth-consent-python-sdk");
      await page.getByRole("button", { name: "Allow" }).click();
      for (let i = 0; i < 100 && arrived.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(arrived.length, 1, "the browser went back to the SDK's redirect URI");
      reply({ callback: new URL(arrived[0], redirect).href });
    } else if (message.revoke) {
      await page.goto(`${base}/dashboard/keys`);
      await page.getByRole("button", { name: `Revoke ${message.revoke}` }).click();
      await page.locator("dialog[id^=revoke-][open]").getByRole("button", { name: "Revoke key" }).click();
      await page.locator("#notice").waitFor();
      reply({ revoked: true });
    } else {
      report = message;
    }
  }
  const code = await new Promise((ok) => (sdk.exitCode !== null ? ok(sdk.exitCode) : sdk.on("exit", ok)));
  assert.equal(code, 0, `the SDK's run failed: ${stderr}`);
  assert.equal(report.scope, "read", "the grant is read-only");
  assert.ok(report.tools.includes("list_contacts") && report.tools.length > 5, report.tools.join(","));
  assert.ok(!report.tools.some((n) => ["send_message", "place_call", "create_contact_note"].includes(n)),
    `a read-only grant is offered no write tool: ${report.tools}`);
  assert.equal(report.read.is_error, false, report.read.text);
  assert.equal(report.write.is_error, true, "the write is refused");
  assert.deepEqual(report.after_statuses.slice(0, 1), [401], "the revoked grant's next call");
  assert.match(report.after, /^refused/, "the SDK asked to sign in again; nobody did");
  assert.deepEqual(page.problems, [], "no console errors");
  await page.context().close();
});

test("contacts: create, find by search, a note on the timeline, edit, confirmed delete", async () => {
  const page = await newPage();
  await signIn(page);
  await page.getByRole("link", { name: "Contacts" }).click();
  await page.locator("h1", { hasText: "Contacts" }).waitFor();
  await page.getByLabel("First name").fill("Ada");
  await page.getByLabel("Last name").fill("Lovelace");
  await page.getByLabel("Phone number").fill("+14155550111");
  await page.getByLabel("Company").fill("Analytical Engines");
  await shot(page, "14-contacts-new");
  await submitting(page, page.getByRole("button", { name: "Create contact" }));
  assert.match(page.url(), /\/dashboard\/contacts\/ct_/);
  const id = page.url().split("/").pop();
  await page.getByLabel("Add a note").fill("Prefers mornings.");
  await submitting(page, page.getByRole("button", { name: "Add note" }));
  await page.locator("#timeline .tl-note", { hasText: "Prefers mornings." }).waitFor();
  await shot(page, "15-contact-timeline");
  // Found by search, from the list.
  await page.goto(`${base}/dashboard/contacts`);
  await page.getByLabel("Search").fill("analytical");
  await submitting(page, page.getByRole("button", { name: "Search", exact: true }));
  assert.match(page.url(), /search=analytical/);
  await page.getByRole("link", { name: "Ada Lovelace" }).waitFor();
  await shot(page, "16-contacts-search");
  await page.getByLabel("Search").fill("babbage");
  await submitting(page, page.getByRole("button", { name: "Search", exact: true }));
  await page.getByText("No contacts match.").waitFor();
  // With scripts, the results follow the typing (htmx) and the address keeps up.
  await page.getByLabel("Search").fill("lovelace");
  await page.waitForURL(/search=lovelace/);
  await page.getByRole("link", { name: "Ada Lovelace" }).waitFor();
  // Edit, then delete through the confirmation page.
  await page.goto(`${base}/dashboard/contacts/${id}`);
  await page.getByLabel("Job title").fill("Analyst");
  await submitting(page, page.getByRole("button", { name: "Save changes" }));
  await page.getByText("Analyst").first().waitFor();
  await page.getByRole("link", { name: "Delete contact" }).click();
  await page.locator("h1", { hasText: "Delete Ada Lovelace?" }).waitFor();
  await shot(page, "17-contact-delete-confirm");
  await submitting(page, page.getByRole("button", { name: "Delete contact" }));
  assert.equal(page.url(), `${base}/dashboard/contacts`);
  assert.equal(await page.getByRole("link", { name: "Ada Lovelace" }).count(), 0);
  assert.deepEqual(page.problems, [], "no console errors");
  await page.context().close();
});

test("without JavaScript: create a contact and find it by search", async () => {
  const page = await newPage({ width: 1360, height: 900 }, { javaScriptEnabled: false });
  await signIn(page);
  await page.goto(`${base}/dashboard/contacts`);
  await page.getByLabel("First name").fill("Grace");
  await page.getByLabel("Last name").fill("Hopper");
  await page.getByLabel("Email").fill("grace@example.com");
  await submitting(page, page.getByRole("button", { name: "Create contact" }));
  assert.match(page.url(), /\/dashboard\/contacts\/ct_/);
  await page.locator("h1", { hasText: "Grace Hopper" }).waitFor();
  await page.goto(`${base}/dashboard/contacts`);
  await page.getByLabel("Search").fill("hopper");
  await submitting(page, page.getByRole("button", { name: "Search", exact: true }));
  await page.getByRole("link", { name: "Grace Hopper" }).waitFor();
  // A refused form is explained without scripts too.
  await page.getByLabel("Phone number").fill("555-0100");
  await submitting(page, page.getByRole("button", { name: "Create contact" }));
  assert.match(await page.locator("#form-error").innerText(), /E\.164/);
  await page.context().close();
});

test("without JavaScript: create a key, revoke it on a confirmation page, the API then answers 401", async () => {
  const page = await newPage({ width: 1360, height: 900 }, { javaScriptEnabled: false });
  await signIn(page);
  // The button submits a form: the new-key form opens on the page.
  await submitting(page, page.getByRole("button", { name: "+ New API Key" }));
  assert.match(page.url(), /\/dashboard\/keys\?new=1#new-key$/);
  await page.locator("dialog#new-key[open]").waitFor();
  await page.locator("#key-name").fill("No-script key");
  await shot(page, "49-new-key-no-js");
  await submitting(page, page.getByRole("button", { name: "Create key" }));
  const secret = await page.locator("#new-secret").inputValue();
  assert.match(secret, /^dt_live_[0-9A-Za-z]{36}$/);
  assert.match(await page.locator("dialog#created-key").innerText(), /cannot be shown again/);
  let r = await api("/v1/contacts", secret);
  assert.equal(r.status, 200);
  // Revoke: the dialog's question on a page of its own.
  await page.goto(`${base}/dashboard/keys`);
  await submitting(page, page.getByRole("button", { name: "Revoke No-script key" }));
  assert.match(page.url(), /\/dashboard\/keys\/key_[0-9A-Za-z]+\/revoke\??$/);
  await page.locator("h1", { hasText: "Revoke “No-script key”?" }).waitFor();
  assert.match(await page.locator(".confirm-card").innerText(), /immediate and permanent/);
  await shot(page, "50-revoke-confirm-no-js");
  r = await api("/v1/contacts", secret);
  assert.equal(r.status, 200, "asking revokes nothing");
  await submitting(page, page.getByRole("button", { name: "Revoke key" }));
  assert.match(page.url(), /\/dashboard\/keys\?revoked=key_/);
  await page.locator("#notice", { hasText: "is revoked" }).waitFor();
  r = await api("/v1/contacts", secret);
  assert.equal(r.status, 401);
  assert.deepEqual(await r.json(), { statusCode: 401, message: "Unauthorized", error: "Unauthorized" });
  await page.context().close();
});

test("without JavaScript: rotate a key, set its limits, rotate a webhook secret, each on a page of its own", async () => {
  const old = cli(["keys", "create", "--org", orgId, "--name", "No-script rotate", "--test"]).trim();
  assert.equal((await api("/v1/contacts", old)).status, 200);
  const page = await newPage({ width: 1360, height: 900 }, { javaScriptEnabled: false });
  await signIn(page);
  // Rotate: the button submits a GET form; the page holds the dialog's choice.
  await submitting(page, page.getByRole("button", { name: "Rotate No-script rotate" }));
  assert.match(page.url(), /\/dashboard\/keys\/key_[0-9A-Za-z]+\/rotate\??$/);
  const keyId = page.url().match(/key_[0-9A-Za-z]+/)[0];
  await page.locator("h1", { hasText: "Rotate “No-script rotate”" }).waitFor();
  await page.getByLabel(/The old key/).selectOption("1h");
  await shot(page, "53-rotate-key-no-js");
  assert.equal((await api("/v1/contacts", old)).status, 200, "asking rotates nothing");
  await submitting(page, page.getByRole("button", { name: "Rotate key" }));
  const fresh = await page.locator("#new-secret").inputValue();
  assert.match(fresh, /^dt_test_[0-9A-Za-z]{36}$/);
  assert.notEqual(fresh, old);
  assert.match(await page.locator("dialog#created-key").innerText(), /cannot be shown again[\s\S]*the old key stops working at/);
  assert.equal(await page.getByRole("button", { name: "Copy" }).count(), 0, "no Copy button that would do nothing");
  // Both work for the hour the old key was given.
  assert.equal((await api("/v1/contacts", old)).status, 200, "the old key until its hour is up");
  assert.equal((await api("/v1/contacts", fresh)).status, 200, "the new key");
  await page.goto(`${base}/dashboard/keys`);
  assert.ok(!(await page.content()).includes(fresh), "the new secret is shown once");

  // Set limits of the new key: only Canada; a call to a US number is then refused.
  const freshId = (await (await api("/v1/me", fresh)).json()).key_id;
  assert.match(freshId, /^key_/);
  assert.notEqual(freshId, keyId);
  await submitting(page, page.locator(`tr[data-key-id="${freshId}"]`).getByRole("button", { name: "Set limits of No-script rotate" }));
  assert.match(page.url(), new RegExp(`/dashboard/keys/${freshId}/limits\\??$`));
  await page.locator("h1", { hasText: "Limits of “No-script rotate”" }).waitFor();
  await page.getByLabel("Destination countries").fill("CA");
  await shot(page, "54-key-limits-no-js");
  await submitting(page, page.getByRole("button", { name: "Save limits" }));
  await page.locator("#notice", { hasText: "Limits of “No-script rotate” saved: to CA." }).waitFor();
  const r = await api("/v1/calls", fresh, { method: "POST", body: JSON.stringify({ to: "+14155550123" }) });
  const body = await r.json();
  assert.equal(r.status, 403, JSON.stringify(body));
  assert.equal(body.error, "KEY_LIMIT_EXCEEDED");

  // The webhook's Rotate secret: a page asking, whose form rotates; the secret shown once.
  const admin = cli(["keys", "create", "--org", orgId, "--name", "No-script hooks"]).trim();
  const hook = await (await api("/v1/webhooks", admin, {
    method: "POST",
    body: JSON.stringify({ url: "http://127.0.0.1:9/no-script", events: ["call.completed"] }),
  })).json();
  assert.match(hook.id, /^whk_/);
  await page.goto(`${base}/dashboard/webhooks/${hook.id}`);
  await submitting(page, page.getByRole("button", { name: "Rotate secret" }));
  assert.match(page.url(), new RegExp(`/dashboard/webhooks/${hook.id}/rotate-secret\\??$`));
  await page.locator("h1", { hasText: "Rotate the signing secret of http://127.0.0.1:9/no-script?" }).waitFor();
  await shot(page, "55-rotate-webhook-secret-no-js");
  await submitting(page, page.getByRole("button", { name: "Rotate secret" }));
  const whsec = await page.locator("#new-secret").inputValue();
  assert.match(whsec, /^whsec_/);
  assert.match(await page.locator(".alert-success").innerText(), /previous one keeps signing too until/);
  await page.goto(`${base}/dashboard/webhooks/${hook.id}`);
  assert.ok(!(await page.content()).includes(whsec), "the new signing secret is shown once");
  await page.context().close();

  // The new pages pass axe (with scripts, as the other pages are checked).
  const js = await newPage();
  await signIn(js);
  const problems = {};
  for (const path of [`/dashboard/keys/${freshId}/rotate`, `/dashboard/keys/${freshId}/limits`,
    `/dashboard/webhooks/${hook.id}/rotate-secret`]) {
    await js.goto(`${base}${path}`);
    problems[path] = await axeProblems(js);
  }
  assert.deepEqual(Object.entries(problems).filter(([, p]) => p.length > 0), []);
  await js.context().close();
});

test("conversations, agents, phone numbers and billing in test mode", async () => {
  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/dashboard/conversations`);
  await submitting(page, page.getByRole("button", { name: "Test mode" }));
  await page.locator(".test-banner").waitFor();
  // A new message starts a conversation; a reply continues it.
  await page.getByLabel("To", { exact: true }).fill("+14155550199");
  await page.getByRole("textbox", { name: "Message", exact: true }).fill("Your table is ready.");
  await submitting(page, page.getByRole("button", { name: "Send message" }));
  assert.match(page.url(), /\/dashboard\/conversations\/conv_/);
  await page.getByLabel("Reply").fill("See you at 8.");
  await submitting(page, page.getByRole("button", { name: "Send message" }));
  const thread = page.locator("#thread");
  assert.match(await thread.innerText(), /Your table is ready\.[\s\S]*See you at 8\./);
  await page.getByLabel("Add a note").fill("VIP guest");
  await submitting(page, page.getByRole("button", { name: "Add note" }));
  await page.locator("#notes", { hasText: "VIP guest" }).waitFor();
  await page.reload();
  await shot(page, "18-conversation");
  await page.goto(`${base}/dashboard/conversations`);
  await page.getByRole("link", { name: "+14155550199" }).waitFor();
  await shot(page, "19-conversations");

  // Agents: create, edit.
  await page.getByRole("link", { name: "Agents" }).click();
  await page.getByLabel("Name").fill("Front desk");
  await page.getByLabel("Prompt").fill("Book tables. Be brief.");
  await submitting(page, page.getByRole("button", { name: "Create agent" }));
  assert.match(page.url(), /\/dashboard\/agents\/agt_/);
  const agentUrl = page.url();
  await page.getByLabel("Name").fill("Front desk (evenings)");
  await submitting(page, page.getByRole("button", { name: "Save changes" }));
  await page.locator("h1", { hasText: "Front desk (evenings)" }).waitFor();
  await shot(page, "20-agent");
  await page.goto(`${base}/dashboard/agents`);
  await page.getByRole("link", { name: "Front desk (evenings)" }).waitFor();
  await shot(page, "21-agents");

  // Numbers: search, buy at the shown price, route to the agent, release.
  await page.getByRole("link", { name: "Phone numbers" }).click();
  await page.getByLabel("Type").selectOption("toll_free");
  await submitting(page, page.getByRole("button", { name: "Search", exact: true }));
  const buy = page.locator("#offers button").first();
  assert.match((await buy.innerText()).replace(/\s+/g, " "), /^Buy \+1\d{10} · \$2\.15\/mo$/);
  await shot(page, "22-numbers-search");
  await submitting(page, buy);
  assert.match(page.url(), /\/dashboard\/numbers\/pn_/);
  const number = (await page.locator("h1").innerText()).trim();
  await page.getByLabel("Agent that answers").selectOption({ label: "Front desk (evenings)" });
  await submitting(page, page.getByRole("button", { name: "Save routing" }));
  await shot(page, "23-number");
  await page.goto(`${base}/dashboard/numbers`);
  const row = page.locator("#numbers tr", { hasText: number });
  assert.match(await row.innerText(), /Front desk \(evenings\)/);
  await shot(page, "24-numbers");
  await row.getByRole("link", { name: number }).click();
  await page.getByRole("link", { name: "Release number" }).click();
  await page.locator("h1", { hasText: `Release ${number}?` }).waitFor();
  await shot(page, "25-number-release-confirm");
  await submitting(page, page.getByRole("button", { name: "Release number" }));
  assert.equal(page.url(), `${base}/dashboard/numbers`);
  assert.equal(await page.locator("#numbers tr", { hasText: number }).count(), 0);

  // Delete the agent through its confirmation page.
  await page.goto(agentUrl);
  await page.getByRole("link", { name: "Delete agent" }).click();
  await submitting(page, page.getByRole("button", { name: "Delete agent" }));
  assert.equal(page.url(), `${base}/dashboard/agents`);
  assert.equal(await page.getByRole("link", { name: "Front desk (evenings)" }).count(), 0);

  // Billing (test wallet) and the audit log of all of it.
  await page.getByRole("link", { name: "Billing" }).click();
  await page.locator("#wallet", { hasText: "$0.00" }).waitFor();
  assert.match(await page.locator("main").innerText(), /the test wallet, which nothing charges/);
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByLabel("Action").selectOption("phone_number.");
  await submitting(page, page.getByRole("button", { name: "Apply" }));
  assert.match(await page.locator("#audit").innerText(), /Released number[\s\S]*Routed number[\s\S]*Bought number/);
  await shot(page, "27-audit-log");
  assert.deepEqual(page.problems, [], "no console errors");
  await page.context().close();
});

test("billing in live mode: the balance, the ledger and this month's invoice with its lines", async () => {
  cli(["billing", "credit", "--org", orgId, "--amount", "25.00"]);
  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/dashboard/billing`);
  const before = await page.locator("#wallet dd.big").innerText();
  await page.goto(`${base}/dashboard/numbers?country=US&type=local`);
  await submitting(page, page.locator("#offers button").first());
  assert.match(page.url(), /\/dashboard\/numbers\/pn_/);
  const number = page.url().split("/").pop();
  await page.getByRole("link", { name: "Billing" }).click();
  const cents = (t) => Math.round(parseFloat(t.replace(/[^0-9.-]/g, "")) * 100);
  assert.equal(cents(await page.locator("#wallet dd.big").innerText()), cents(before) - 115, "charged $1.15");
  const ledger = await page.locator("#ledger").innerText();
  assert.match(ledger, new RegExp(`phone_number[\\s\\S]*${number}[\\s\\S]*-\\$1\\.15`));
  assert.match(ledger, /credit[\s\S]*\$25\.00/);
  const month = new Date().toISOString().slice(0, 7).replace("-", "");
  const invoice = page.locator(`details#inv_${month}`);
  assert.match(await invoice.innerText(), /open[\s\S]*Phone numbers \(monthly\)[\s\S]*\$1\.15/);
  await shot(page, "26-billing");
  await page.context().close();
});

test("campaigns: a CSV with a BOM and quoted fields, previewed, started, progressing to completion", async () => {
  const key = cli(["keys", "create", "--org", orgId, "--name", "Campaigns", "--test"]).trim();
  const r = await api("/v1/agents", key, { method: "POST", body: JSON.stringify({ name: "Campaign caller" }) });
  assert.equal(r.status, 201);
  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/dashboard/campaigns`);
  if (!(await page.locator(".test-banner").count())) {
    await submitting(page, page.getByRole("button", { name: "Test mode" }));
  }
  await page.locator(".test-banner").waitFor();
  await page.getByLabel("Name").fill("Spring renewals");
  await page.getByLabel("Agent that calls").selectOption({ label: "Campaign caller" });
  // As Excel saves "CSV UTF-8" with `;`: a byte order mark, quoted cells, the number third.
  const csv = '\ufeffName;"Company; Inc";Mobile\r\n"Lovelace, Ada";"Engines ""Ltd""";+14155550123\r\n' +
    'Bob;Acme;"+14155550124"\r\nCy;;+14155550125\r\n';
  await page.getByLabel("Recipients (CSV file)").setInputFiles({ name: "list.csv", mimeType: "text/csv", buffer: Buffer.from(csv, "utf8") });
  await shot(page, "40-campaigns");
  await submitting(page, page.getByRole("button", { name: "Preview" }));
  // The preview: the column chosen and the first rows, nothing started yet.
  assert.equal((await page.locator("#chosen-column").innerText()).trim(), "Mobile");
  assert.match(await page.locator("#preview-rows").innerText(), /\+14155550123[\s\S]*\+14155550124[\s\S]*\+14155550125/);
  const list = await (await api("/v1/campaigns", key)).json();
  assert.equal(list.data.length, 0, "a preview creates nothing");
  await shot(page, "41-campaign-preview");
  await submitting(page, page.getByRole("button", { name: /Start campaign/ }));
  assert.match(page.url(), /\/dashboard\/campaigns\/cmp_/);
  // htmx polls the progress fragment until the campaign completes; no reload.
  await page.locator("#campaign-status", { hasText: "completed" }).waitFor({ timeout: 30000 });
  assert.match(await page.locator("#campaign-done").innerText(), /3 of 3/);
  await page.reload();
  assert.equal(await page.locator("#campaign-calls tbody tr").count(), 3);
  await shot(page, "42-campaign");
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("analytics: charts named for screen readers, the table of the same numbers, a GET form", async () => {
  const key = cli(["keys", "create", "--org", orgId, "--name", "Charts", "--test"]).trim();
  for (const to of ["+14155550181", "+14155550182"]) {
    const placed = await (await api("/v1/calls", key, { method: "POST", body: JSON.stringify({ to }) })).json();
    for (let i = 0; i < 100; i++) {
      const c = await (await api(`/v1/calls/${placed.id}`, key)).json();
      if (!["queued", "ringing", "in_progress"].includes(c.status)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/dashboard/analytics`);
  await submitting(page, page.getByRole("button", { name: "Test mode" }));
  await page.waitForURL(`${base}/dashboard/analytics`);
  // Four charts, each an image with a name that sums it up, 30 days each.
  const calls = page.getByRole("img", { name: /^Calls per day, .*: \d+ calls? in total, peak \d+ on / });
  await calls.waitFor();
  assert.equal(await page.locator("svg.chart-large[role=img]").count(), 4);
  for (const svg of await page.locator("svg.chart-large").all()) {
    assert.equal(await svg.locator("rect.bar").count(), 30);
    const box = await svg.boundingBox();
    assert.ok(box.width > 200 && box.height > 50, `a chart is drawn at ${JSON.stringify(box)}`);
  }
  const today = await calls.locator("g.slot").last().locator("title").textContent();
  const count = (text) => Number(text.replaceAll(",", ""));
  assert.ok(count(today.match(/: ([\d,]+) calls?$/)[1]) >= 2, `today's bar holds the calls just placed: ${today}`);
  const tallest = await calls.locator("rect.bar").evaluateAll((bars) => Math.max(...bars.map((b) => b.getBBox().height)));
  assert.equal(tallest, 100, "the busiest day fills the chart");
  // The table beneath: its totals are the API's (every call of this workspace's test
  // mode is from today, so the API's default range holds the same ones).
  const totals = await page.locator("#usage tfoot td").allTextContents();
  const apiReport = await (await api("/v1/analytics/usage", key)).json();
  assert.ok(apiReport.totals.calls >= 2);
  assert.deepEqual(totals.slice(0, 4).map(count),
    [apiReport.totals.calls, apiReport.totals.answered, apiReport.totals.missed, apiReport.totals.minutes]);
  assert.deepEqual(await axeProblems(page), [], "axe on the analytics page");
  await shot(page, "45-analytics");
  // The form is a GET: a range of 7 days draws 7 slots; grouped by direction adds a column.
  const end = new Date().toISOString().slice(0, 10);
  const start = new Date(Date.now() - 6 * 86400000).toISOString().slice(0, 10);
  await page.getByLabel("From").fill(start);
  await page.getByLabel("To (inclusive)").fill(end);
  await page.getByLabel("Group by").selectOption("direction");
  await submitting(page, page.getByRole("button", { name: "Apply" }));
  assert.match(page.url(), new RegExp(`from=${start}&to=${end}&group_by=direction`));
  assert.equal(await calls.locator("rect.bar").count(), 7);
  assert.match(await page.locator("#usage tbody").innerText(), /outbound/);
  assert.deepEqual(await axeProblems(page), [], "axe on the grouped analytics page");
  // A backwards range is explained, with a 400, not drawn.
  const resp = await page.goto(`${base}/dashboard/analytics?from=${end}&to=${start}`);
  assert.equal(resp.status(), 400);
  assert.match(await page.locator("#form-error").innerText(), /from must be before to/);
  // (Chromium logs that 400 as a console error: the one expected.)
  assert.equal(page.problems.length, 1);
  assert.match(page.problems.pop(), /status of 400/);
  // The calls page and the keys page draw their own charts.
  await page.goto(`${base}/dashboard/calls`);
  await page.getByRole("img", { name: /^Calls per day, last 30 days: / }).waitFor();
  await page.getByRole("img", { name: /^Billable minutes per day, last 30 days: / }).waitFor();
  await new Promise((res) => setTimeout(res, 400)); // let usage flush (200 ms)
  await page.goto(`${base}/dashboard/keys`);
  const spark = page.locator("tr", { hasText: "Charts" }).getByRole("img", { name: /^Requests per day, last 30 days: / });
  assert.equal(await spark.locator("rect.bar").count(), 30);
  assert.deepEqual(page.problems, [], "no console errors (a CSP refusal would be one)");
  await page.context().close();
});

test("without JavaScript: the campaigns list and a contact's timeline page by Older links", async () => {
  const key = cli(["keys", "create", "--org", orgId, "--name", "Paging", "--test"]).trim();
  const post = async (path, body) => {
    const r = await api(path, key, { method: "POST", body: JSON.stringify(body) });
    const text = await r.text();
    assert.equal(r.status, 201, `${path}: ${text}`);
    return JSON.parse(text);
  };
  const agent = await post("/v1/agents", { name: "Pager" });
  for (let i = 1; i <= 26; i++) {
    await post("/v1/campaigns", { name: `Batch ${String(i).padStart(2, "0")}`, agent_id: agent.id, recipients: ["+14155550165"] });
  }
  const contact = await post("/v1/contacts", { first_name: "Paige", last_name: "Turner", phone_number: "+14155550166" });
  for (let i = 1; i <= 27; i++) {
    await post(`/v1/contacts/${contact.id}/notes`, { content: `Note ${String(i).padStart(2, "0")}` });
  }
  const page = await newPage({ width: 1360, height: 900 }, { javaScriptEnabled: false });
  await signIn(page);
  await page.goto(`${base}/dashboard/campaigns`);
  if (!(await page.locator(".test-banner").count())) {
    await submitting(page, page.getByRole("button", { name: "Test mode" }));
  }
  const firstPage = await page.locator("#campaigns tbody tr").allInnerTexts();
  assert.equal(firstPage.length, 25);
  assert.match(firstPage[0], /Batch 26/, "newest first");
  await submitting(page, page.getByRole("link", { name: "Older campaigns →" }));
  assert.match(page.url(), /\/dashboard\/campaigns\?cursor=/);
  const older = await page.locator("#campaigns tbody tr").allInnerTexts();
  assert.match(older[0], /Batch 01/, "the next older one");
  assert.ok(older.every((row) => !firstPage.includes(row)), "no repeats");
  const campaignsOlder = page.url();
  await shot(page, "51-campaigns-older");
  // The timeline: 27 notes, the newest 25 first, then the two oldest.
  await page.goto(`${base}/dashboard/contacts/${contact.id}`);
  const texts = () => page.locator("ol.timeline .tl-text").allInnerTexts();
  const newest = await texts();
  assert.equal(newest.length, 25);
  assert.deepEqual([newest[0], newest[24]], ["Note 27", "Note 03"]);
  await submitting(page, page.getByRole("link", { name: "Older activity →" }));
  assert.match(page.url(), /\/dashboard\/contacts\/ct_[0-9A-Za-z]+\?cursor=[^#]+#timeline$/);
  assert.deepEqual(await texts(), ["Note 02", "Note 01"]);
  assert.equal(await page.getByRole("link", { name: "Older activity →" }).count(), 0);
  const timelineOlder = page.url();
  await shot(page, "52-contact-timeline-older");
  await page.getByRole("link", { name: "← Newest" }).waitFor();
  await page.context().close();
  // The older pages pass axe too.
  const js = await newPage();
  await signIn(js);
  const problems = {};
  for (const url of [campaignsOlder, timelineOlder]) {
    await js.goto(url);
    problems[url] = await axeProblems(js);
  }
  assert.deepEqual(Object.entries(problems).filter(([, p]) => p.length > 0), []);
  await js.context().close();
});

test("axe-core: zero serious or critical violations on every page; a phone-sized screen", async () => {
  const key = cli(["keys", "create", "--org", orgId, "--name", "Axe", "--test"]).trim();
  const post = async (path, body) => {
    const r = await api(path, key, { method: "POST", body: JSON.stringify(body) });
    const text = await r.text();
    assert.equal(r.status, 201, `${path}: ${text}`);
    return JSON.parse(text);
  };
  const contact = await post("/v1/contacts", { first_name: "Axel", phone_number: "+14155550177" });
  const message = await post("/v1/messages", { to: "+14155550177", body: "Hello from axe" });
  const agent = await post("/v1/agents", { name: "Axe agent" });
  const number = await post("/v1/phone-numbers", {});
  const call = await post("/v1/calls", { to: "+14155550177" });
  const hook = await post("/v1/webhooks", { url: "http://127.0.0.1:9/hook", events: ["call.completed"] });
  const campaign = await post("/v1/campaigns", { name: "Axe campaign", agent_id: agent.id, recipients: ["+14155550177"] });

  const signedOut = await newPage();
  await signedOut.goto(`${base}/login`);
  const problems = { "/login": await axeProblems(signedOut) };
  await signedOut.context().close();

  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/dashboard/contacts`);
  await submitting(page, page.getByRole("button", { name: "Test mode" }));
  const pages = [
    "/dashboard/keys", "/dashboard/calls", `/dashboard/calls/${call.id}`, "/dashboard/webhooks",
    `/dashboard/webhooks/${hook.id}`, "/dashboard/contacts", `/dashboard/contacts/${contact.id}`,
    `/dashboard/contacts/${contact.id}/delete`, "/dashboard/conversations",
    `/dashboard/conversations/${message.conversation_id}`, "/dashboard/numbers?country=US&type=local",
    `/dashboard/numbers/${number.id}`, `/dashboard/numbers/${number.id}/release`, "/dashboard/agents",
    `/dashboard/agents/${agent.id}`, `/dashboard/agents/${agent.id}/delete`, "/dashboard/billing",
    "/dashboard/audit", "/dashboard/contacts/ct_01jd5x7c2m8n4p6q8r0s2t4v6w", "/dashboard/integrations",
    "/dashboard/campaigns", `/dashboard/campaigns/${campaign.id}`, `/dashboard/campaigns/${campaign.id}/cancel`,
    "/dashboard/analytics", "/dashboard/analytics?group_by=direction", "/dashboard/analytics?from=x",
  ];
  for (const path of pages) {
    await page.goto(`${base}${path}`);
    problems[path] = await axeProblems(page);
  }
  // The keys page's dialogs, opened.
  await page.goto(`${base}/dashboard/keys`);
  await page.getByRole("button", { name: "+ New API Key" }).click();
  problems["/dashboard/keys (new key dialog)"] = await axeProblems(page);
  const found = Object.entries(problems).filter(([, p]) => p.length > 0);
  assert.deepEqual(found, [], "serious or critical accessibility violations");
  await page.context().close();

  // A phone-sized screen: the pages fit the width (no sideways scrolling).
  const phone = await newPage({ width: 390, height: 844 });
  await signIn(phone);
  await phone.goto(`${base}/dashboard/contacts`);
  await submitting(phone, phone.getByRole("button", { name: "Test mode" }));
  for (const [path, name] of [
    ["/dashboard/contacts", "28-contacts-phone"],
    [`/dashboard/contacts/${contact.id}`, "29-contact-phone"],
    [`/dashboard/conversations/${message.conversation_id}`, "30-conversation-phone"],
    ["/dashboard/numbers?country=US&type=local", "31-numbers-phone"],
    ["/dashboard/billing", "32-billing-phone"],
    ["/dashboard/campaigns", "43-campaigns-phone"],
    [`/dashboard/campaigns/${campaign.id}`, "44-campaign-phone"],
    ["/dashboard/webhooks", "37-webhooks-phone"],
    ["/dashboard/integrations", "38-integrations-phone"],
    ["/dashboard/analytics", "46-analytics-phone"],
    ["/dashboard/calls", "47-calls-phone"],
  ]) {
    await phone.goto(`${base}${path}`);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path} scrolls sideways by ${overflow}px on a phone`);
    await shot(phone, name);
  }
  // Keyboard: the skip link is the first stop and lands on the content.
  await phone.keyboard.press("Tab");
  assert.equal(await phone.evaluate(() => document.activeElement?.textContent), "Skip to content");
  await phone.keyboard.press("Enter");
  assert.equal(await phone.evaluate(() => document.activeElement?.id), "main");
  await phone.context().close();
});
