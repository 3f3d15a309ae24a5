// End-to-end: the real `dialtone` binary, a person in headless Chromium, the API by fetch.
//
// Sign in; create a read-only key in the modal; read it once; the API accepts it for a
// read and refuses a write with 403; reload and find only the last four and the badge;
// revoke it and see the API answer 401. Screenshots of the main pages go to
// tests/e2e/screenshots/ (ignored by git).
//
// Run with tests/e2e/run (installs Chromium and npm packages, builds the binary).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const BIN = process.env.DIALTONE_BIN ?? join(root, "target/debug/dialtone");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = join(here, "screenshots");
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

async function newPage(viewport = { width: 1360, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (m) => { if (m.type() === "error") page.problems.push(m.text()); });
  page.on("pageerror", (e) => page.problems.push(String(e)));
  return page;
}

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

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
