// Drive Debian's headless Chromium with playwright-core (no browser download):
//  1. open a notebook in a running JupyterLab, run all cells, wait for the notebook's results file,
//     screenshot the page and every widget canvas;
//  2. open standalone viewer HTML files (file://) and screenshot their canvases.
// Writes <out>/report.json with console messages, page errors, non-local requests and screenshots;
// the pixel checks are done by tests/test_browser.py.
// Usage: node check_viewer.js --out DIR [--lab URL --wait-file PATH --min-canvases N] [--html FILE ...]
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

function parseArgs(argv) {
  const a = { html: [], minCanvases: 1, timeout: 180000, chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    if (k === '--out') { a.out = v; i++; }
    else if (k === '--lab') { a.lab = v; i++; }
    else if (k === '--wait-file') { a.waitFile = v; i++; }
    else if (k === '--min-canvases') { a.minCanvases = parseInt(v, 10); i++; }
    else if (k === '--timeout') { a.timeout = parseInt(v, 10) * 1000; i++; }
    else if (k === '--chromium') { a.chromium = v; i++; }
    else if (k === '--html') { a.html.push(v); i++; }
    else throw new Error('unknown argument ' + k);
  }
  if (!a.out) throw new Error('--out is required');
  return a;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, timeout, what) {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > timeout) throw new Error('timed out waiting for ' + what);
    await sleep(500);
  }
}

function watch(page, report, tag) {
  page.on('console', (m) => {
    if (m.type() !== 'debug') report.console.push({ page: tag, type: m.type(), text: m.text() });
  });
  page.on('pageerror', (e) => report.pageErrors.push({ page: tag, text: String(e) }));
  page.on('request', (r) => {
    const u = r.url();
    if (!/^(file|data|blob|about):/.test(u) && !u.startsWith('http://127.0.0.1')) {
      report.externalRequests.push({ page: tag, url: u });
    }
  });
}

// photograph a view's picture: pythreejs shows a live <canvas> or a frozen <img> and swaps them
// when the view is scrolled or hovered, so look the picture up again on each try
async function shootView(el, file) {
  for (let attempt = 0; ; attempt++) {
    try {
      await el.scrollIntoViewIfNeeded();
      await sleep(300);
      const inner = (await el.$('canvas, img')) || el;
      await inner.screenshot({ path: file, timeout: 10000 });
      return await inner.boundingBox();
    } catch (e) {
      if (attempt >= 3) throw e;
      await sleep(500);
    }
  }
}

async function shootCanvases(page, selector, prefix, out, report) {
  const canvases = await page.$$(selector);
  for (let i = 0; i < canvases.length; i++) {
    // the pythreejs element can be wider than its picture: photograph the picture
    const file = path.join(out, `${prefix}_canvas${i}.png`);
    const box = await shootView(canvases[i], file);
    report.screenshots.push({ kind: prefix, index: i, file, box });
  }
  return canvases.length;
}

// drag across an element's centre (orbit controls rotate the view), then photograph it again
async function dragAndShoot(page, find, file) {
  let el = await find();
  await el.scrollIntoViewIfNeeded();
  const b = await el.boundingBox();
  const x = b.x + b.width / 2, y = b.y + b.height / 2;
  await page.mouse.move(x - 5, y - 5);
  await page.mouse.move(x, y); // pythreejs wakes a frozen view up on hover: give it a moment
  await sleep(1000);
  await page.mouse.down();
  for (let k = 1; k <= 10; k++) await page.mouse.move(x + 8 * k, y + 2 * k);
  await page.mouse.up();
  await sleep(1000);
  el = await find(); // pythreejs swaps a frozen <img> for a live <canvas> on interaction
  await el.screenshot({ path: file });
  return file;
}

async function runNotebook(browser, a, report) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  watch(page, report, 'lab');
  const t0 = Date.now();
  await page.goto(a.lab, { waitUntil: 'domcontentloaded', timeout: a.timeout });
  await page.waitForSelector('.jp-NotebookPanel .jp-Cell', { timeout: a.timeout });
  // JupyterLab may ask which kernel to start: accept the notebook's own (python3)
  const accept = page.locator('.jp-Dialog .jp-Dialog-button.jp-mod-accept');
  await accept.waitFor({ timeout: 10000 }).then(() => accept.click()).catch(() => {});
  // the kernel must be idle before "Run All Cells" is useful
  await page.waitForSelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', { timeout: a.timeout })
    .catch(() => sleep(5000));
  report.lab.openedMs = Date.now() - t0;
  // JupyterLab asks about news in a toast that can cover outputs: say no
  await page.locator('.Toastify button', { hasText: /^No$/ }).click({ timeout: 3000 }).catch(() => {});
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Run All Cells$/ }).click();
  await accept.waitFor({ timeout: 2000 }).then(() => accept.click()).catch(() => {});
  const t1 = Date.now();
  const cellError = async () => page.$$eval('[data-mime-type="application/vnd.jupyter.error"]',
    (els) => els.map((e) => e.innerText.slice(-2000)));
  if (a.waitFile) {
    await waitFor(async () => {
      const errs = await cellError();
      if (errs.length) throw new Error('a notebook cell failed:\n' + errs.join('\n'));
      return fs.existsSync(a.waitFile);
    }, a.timeout, a.waitFile);
  }
  // pythreejs keeps at most 8 live WebGL contexts and shows older views as frozen images,
  // so count and photograph the widget elements, not <canvas> tags
  const views = '.jp-OutputArea-output .jupyter-threejs';
  await waitFor(async () => (await page.$$(views)).length >= a.minCanvases,
    60000, `${a.minCanvases} pythreejs views`);
  await sleep(3000); // let the widgets draw their first frames
  report.lab.ranMs = Date.now() - t1;
  await page.screenshot({ path: path.join(a.out, 'lab_top.png') });
  report.lab.canvases = await shootCanvases(page, views, 'lab', a.out, report);
  // a control round trip through the kernel: untick the first "error heat map" box (the comparer),
  // its views are re-coloured by Python
  const box = page.locator('.widget-checkbox', { hasText: 'error heat map' }).first().locator('input');
  if (await box.count()) {
    await box.scrollIntoViewIfNeeded();
    await box.click();
    await sleep(4000);
    const all = await page.$$(views);
    report.lab.afterToggle = [];
    for (let i = 0; i < all.length; i++) {
      const file = path.join(a.out, `lab_canvas${i}_toggled.png`);
      await shootView(all[i], file);
      report.lab.afterToggle.push(file);
    }
  }
  const first = await page.$(views);
  report.lab.dragged = await dragAndShoot(page, async () => (await first.$('canvas, img')) || first,
    path.join(a.out, 'lab_canvas0_dragged.png'));
  report.lab.widgetErrors = await page.$$eval('.jp-OutputArea-output', (els) =>
    els.map((e) => e.innerText).filter((t) => /Error displaying widget|model not found|Failed to load/i.test(t)));
  await page.screenshot({ path: path.join(a.out, 'lab_after.png') });
  await page.close();
}

async function openHtml(browser, file, i, a, report) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  watch(page, report, `html${i}`);
  await page.goto('file://' + path.resolve(file), { waitUntil: 'load', timeout: a.timeout });
  await page.waitForFunction(() => window.symnbRendered > 0, null, { timeout: 60000 });
  const n = await page.evaluate(() => window.symnbRendered);
  await page.screenshot({ path: path.join(a.out, `html${i}_page.png`), fullPage: true });
  const shot = await shootCanvases(page, 'canvas.symnb-view', `html${i}`, a.out, report);
  const dragged = await dragAndShoot(page, () => page.$('canvas.symnb-view'),
    path.join(a.out, `html${i}_canvas0_dragged.png`));
  report.html.push({ file, rendered: n, canvases: shot, dragged });
  await page.close();
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  fs.mkdirSync(a.out, { recursive: true });
  const report = { console: [], pageErrors: [], externalRequests: [], screenshots: [], lab: {}, html: [] };
  const browser = await chromium.launch({
    executablePath: a.chromium,
    headless: true,
    timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
      '--disable-dev-shm-usage'],
  });
  let failure = null;
  try {
    if (a.lab) {
      await runNotebook(browser, a, report).catch(async (e) => {
        for (const p of browser.contexts().flatMap((c) => c.pages())) {
          await p.screenshot({ path: path.join(a.out, 'lab_failure.png') }).catch(() => {});
        }
        throw e;
      });
    }
    for (let i = 0; i < a.html.length; i++) await openHtml(browser, a.html[i], i, a, report);
  } catch (e) {
    failure = String(e && e.stack || e);
    report.failure = failure;
  } finally {
    fs.writeFileSync(path.join(a.out, 'report.json'), JSON.stringify(report, null, 2));
    await browser.close().catch(() => {});
  }
  if (failure) { console.error(failure); process.exit(1); }
}

main().catch((e) => { console.error(e); process.exit(2); });
