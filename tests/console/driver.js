// Drives Debian's chromium (never a downloaded browser) against a running atgw console, for
// tests/console.rs. It reads one command per line on stdin and answers one JSON line on stdout
// ({"ok": true, ...} or {"ok": false, "error": "..."}), so the Rust test keeps the story:
// it presses pendants over MQTT, kills and restarts the gateway, and asks the browser what a
// carer sees.
//
// Usage: node driver.js BASE_URL   (e.g. http://127.0.0.1:8780)
'use strict';

const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const base = process.argv[2];
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];

let context; let page;
let fanoutBrowser = null; const fanoutPages = [];

async function open() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'atgw-console-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1280, height: 800 },
  });
  page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') process.stderr.write(`page: ${m.text()}\n`); });
  await page.goto(`${base}/console`);
}

const cards = () => page.locator('#alerts li.alert');
const card = (text) => page.locator('#alerts li.alert', { hasText: text });

const commands = {
  async open() { await open(); return {}; },
  async login(name, password) {
    await page.fill('#name', name);
    await page.fill('#password', password);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#who:not([hidden])', { timeout: 10000 });
    return { who: await page.textContent('#who-name') };
  },
  // A login expected to fail: the message the page shows.
  async bad_login(name, password) {
    await page.fill('#name', name);
    await page.fill('#password', password);
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0, null, { timeout: 10000 });
    return { error: await page.textContent('#login-error') };
  },
  // Waits until an alert card containing `text` shows; `ms` is how long that took from now.
  async wait_alert(text, timeout) {
    const t0 = Date.now();
    await card(text).first().waitFor({ state: 'visible', timeout: Number(timeout) || 10000 });
    return { ms: Date.now() - t0, text: await card(text).first().innerText() };
  },
  async wait_text(text, timeout) {
    await page.locator('#alerts', { hasText: text }).waitFor({ timeout: Number(timeout) || 10000 });
    return { text: await page.innerText('#alerts') };
  },
  async wait_gone(text, timeout) {
    await card(text).first().waitFor({ state: 'detached', timeout: Number(timeout) || 10000 });
    return {};
  },
  async alerts() { return { count: await cards().count(), text: await page.innerText('#alerts') }; },
  async ack(text) {
    await card(text).first().locator('button[data-act=ack]').click();
    await card(text).first().locator('.acked-by').waitFor({ timeout: 10000 });
    return { text: await card(text).first().innerText() };
  },
  async resolve(text, outcome, note) {
    await card(text).first().locator('button[data-act=resolve]').click();
    await page.check(`#outcomes input[value="${outcome}"]`);
    if (note) await page.fill('#note', note);
    await page.click('#resolve-ok');
    await card(text).first().waitFor({ state: 'detached', timeout: 10000 });
    return {};
  },
  async banner() {
    const hidden = await page.getAttribute('#banner', 'hidden');
    return { shown: hidden === null, text: await page.innerText('#banner') };
  },
  async wait_banner(text, timeout) {
    await page.locator('#banner:not([hidden])', { hasText: text }).waitFor({ timeout: Number(timeout) || 15000 });
    return { text: await page.innerText('#banner') };
  },
  async wait_no_lost(timeout) {
    await page.waitForFunction(() => !document.getElementById('banner').classList.contains('lost'), null, { timeout: Number(timeout) || 15000 });
    return {};
  },
  async logout() {
    await page.click('#logout');
    await page.waitForSelector('#login:not([hidden])', { timeout: 10000 });
    return {};
  },
  // The devices view: its rows' text once `text` shows in the table (e.g. a device's id).
  async devices(text) {
    await page.click('#tab-devices');
    await page.locator('#devices tbody', { hasText: text }).waitFor({ timeout: 10000 });
    return { text: await page.innerText('#devices tbody'), rows: await page.locator('#devices tbody tr').count() };
  },
  // Reloads the devices view until the device's "Times offline" cell contains `text`.
  async wait_offline(device, text, timeout) {
    const deadline = Date.now() + (Number(timeout) || 20000);
    const cell = () => page.locator(`#devices tr[data-device="${device}"] td[data-col=offline]`);
    for (;;) {
      await page.click('#tab-devices');
      await page.waitForTimeout(300);
      const t = (await cell().count()) ? await cell().innerText() : '';
      if (t.includes(text)) return { text: t };
      if (Date.now() > deadline) throw new Error(`"${text}" not in ${device}'s offline history: ${t}`);
      await page.waitForTimeout(700);
    }
  },
  async area(name) {
    await page.selectOption('#area', { label: name });
    return { text: await page.innerText('#devices tbody'), rows: await page.locator('#devices tbody tr').count() };
  },
  async shelve(device, duration, reason) {
    await page.click(`#devices button[data-act=shelve][data-device="${device}"]`);
    await page.selectOption('#shelve-for', duration);
    await page.fill('#shelve-reason', reason);
    await page.click('#shelve-ok');
    const item = page.locator(`#shelves li[data-device="${device}"]`);
    await item.waitFor({ timeout: 10000 });
    return { text: await item.innerText() };
  },
  async unshelve(device) {
    await page.click(`#shelves li[data-device="${device}"] button[data-act=unshelve]`);
    await page.locator(`#shelves li[data-device="${device}"]`).waitFor({ state: 'detached', timeout: 10000 });
    return {};
  },
  // Whether the page offers a control (a selector) at all.
  async count(selector) { return { count: await page.locator(selector).count() }; },
  async visible(selector) { return { visible: await page.locator(selector).first().isVisible() }; },
  // The report tab: the period chosen in its form, the report opened in a new tab.
  async report(from, to) {
    await page.click('#tab-report');
    await page.fill('#report-from', from);
    await page.fill('#report-to', to);
    const [tab] = await Promise.all([context.waitForEvent('page'), page.click('#report-form button[type=submit]')]);
    await tab.waitForLoadState('load');
    const out = { title: await tab.title(), period: await tab.textContent('#period').catch(() => null), text: await tab.innerText('body') };
    await tab.close();
    return out;
  },
  // A state change from the page without the CSRF token (as a forged request would be).
  async post_without_csrf(url) {
    return page.evaluate(async (u) => {
      const r = await fetch(u, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      return { status: r.status, body: await r.text() };
    }, url);
  },
  async screenshot(file, width, height) {
    await page.setViewportSize({ width: Number(width), height: Number(height) });
    await page.waitForTimeout(300);
    await page.screenshot({ path: file, fullPage: false });
    await page.setViewportSize({ width: 1280, height: 800 });
    return {};
  },
  // axe-core in this same browser; serious and critical violations (and the rest counted).
  async axe() {
    // Evaluated over the DevTools protocol: the page's own CSP (rightly) refuses injected tags.
    await page.evaluate(fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));
    const r = await page.evaluate(async () => window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] }));
    const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    return { serious: bad, all: r.violations.map((v) => `${v.id}:${v.impact}`), passes: r.passes.length };
  },
  // N more consoles, each its own browser context (its own connection pool: one profile would
  // hold at most 6 HTTP/1.1 connections to the gateway) logged in with this page's cookie; each
  // notes when every alert card is first painted (performance clock, ms since the epoch).
  async fanout(n) {
    const cookies = await context.cookies();
    fanoutBrowser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    for (let i = 0; i < Number(n); i++) {
      const ctx = await fanoutBrowser.newContext({ viewport: { width: 1280, height: 800 } });
      await ctx.addCookies(cookies);
      const p = await ctx.newPage();
      await p.addInitScript(() => {
        window.__painted = {};
        new MutationObserver(() => {
          const fresh = [...document.querySelectorAll('#alerts li.alert')]
            .map((li) => li.dataset.id).filter((id) => !(id in window.__painted));
          if (fresh.length) {
            requestAnimationFrame(() => {
              const t = performance.timeOrigin + performance.now();
              for (const id of fresh) if (!(id in window.__painted)) window.__painted[id] = t;
            });
          }
        }).observe(document, { subtree: true, childList: true });
      });
      await p.goto(`${base}/console`);
      await p.waitForSelector('#alerts-view:not([hidden])', { timeout: 20000 });
      fanoutPages.push(p);
    }
    // Each page's stream is open before the caller starts pressing.
    await Promise.all(fanoutPages.map((p) => p.waitForFunction(() => !document.getElementById('banner').classList.contains('lost'))));
    await page.waitForTimeout(500);
    return { pages: fanoutPages.length };
  },
  async painted() {
    return { pages: await Promise.all(fanoutPages.map((p) => p.evaluate(() => window.__painted))) };
  },
  // The page's network goes away (Wi-Fi lost) and comes back; the gateway stays up.
  async offline() { await context.setOffline(true); return {}; },
  async online() { await context.setOffline(false); return {}; },
  async reload() { await page.reload(); return {}; },
  async eval(js) { return { value: await page.evaluate(js) }; },
  async quit() {
    if (fanoutBrowser) await fanoutBrowser.close();
    await context.close();
    process.exit(0);
  },
};

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    if (!line.trim()) return;
    try {
      const [cmd, ...args] = JSON.parse(line);
      const f = commands[cmd];
      if (!f) throw new Error(`unknown command ${cmd}`);
      const out = await f(...args);
      process.stdout.write(`${JSON.stringify({ ok: true, ...out })}\n`);
    } catch (e) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: String((e && e.stack) || e) })}\n`);
    }
  });
});
rl.on('close', () => { chain.then(() => context && context.close()).then(() => process.exit(0)); });
