// Drives the shardmq web console in Debian's Chromium with playwright-core
// (tests/console.rs runs it against a live broker with traffic).
//
// Usage: node console.mjs BASE_URL SCREENSHOT_DIR SPEC_JSON
// SPEC_JSON: {"topic", "group", "dlqGroup", "key", "alert", "login": [ak, sk] | null}
// Prints one JSON line: what each page showed, for the test to compare
// with `shardmq admin`. Exits non-zero on a page error.
import { chromium } from "playwright-core";
import path from "node:path";
import fs from "node:fs";

const [base, shots, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);
fs.mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.on("pageerror", (e) => out.errors.push(String(e)));
  // With ACL on, the first call is refused (401) and the page asks for keys.
  let signedIn = !spec.login;
  page.on("console", (m) => {
    if (m.type() === "error" && !(m.text().includes("401") && !signedIn)) out.errors.push(m.text());
  });

  const open = async (hash, loaded) => {
    await page.goto(`${base}/${hash}`);
    await page.waitForSelector(`body[data-loaded="${loaded}"]`, { timeout: 15000 });
    const err = await page.$("[data-testid=page-error]");
    if (err) throw new Error(`${hash}: ${await err.textContent()}`);
  };
  const num = async (sel) => Number((await page.textContent(sel)).replace(/[^0-9-]/g, ""));

  if (spec.login) {
    // ACL on: the console asks for keys, then works with them.
    await page.goto(`${base}/#/cluster`);
    await page.waitForSelector("dialog#login[open]", { timeout: 15000 });
    await page.fill("input[name=ak]", spec.login[0]);
    await page.fill("input[name=sk]", spec.login[1]);
    await page.click("dialog#login button[type=submit]");
    await page.waitForSelector('body[data-loaded="cluster"]', { timeout: 15000 });
    signedIn = true;
    out.session = await page.textContent("#session");
  }

  await open("#/cluster", "cluster");
  out.shards = await num("[data-testid=shard-count]");
  out.sendsTotal = await num("[data-testid=sends-total]");
  out.sendsByShard = [];
  for (let k = 0; k < out.shards; k++) out.sendsByShard.push(await num(`[data-testid=shard-sends-${k}]`));
  out.histograms = await page.$$eval("svg[aria-label$='latency histogram']", (s) => s.length);
  await page.screenshot({ path: path.join(shots, "cluster.png"), fullPage: true });

  await open("#/topics", "topics");
  out.topicMessages = await num(`[data-testid="topic-messages-${spec.topic}"]`);
  await page.screenshot({ path: path.join(shots, "topics.png"), fullPage: true });
  await open(`#/topics/${encodeURIComponent(spec.topic)}`, "topics");
  out.topicDetailMessages = await num("[data-testid=topic-detail-messages]");

  await open("#/groups", "groups");
  out.groupLag = await num(`[data-testid="group-lag-${spec.group}"]`);
  await page.screenshot({ path: path.join(shots, "groups.png"), fullPage: true });
  await open(`#/groups/${encodeURIComponent(spec.group)}`, "groups");
  out.groupDetailLag = await num("[data-testid=group-detail-lag]");
  // Two more samples for the lag chart (the page refreshes itself).
  await page.waitForTimeout(6500);
  out.lagChart = (await page.$("svg[aria-label='lag over time'] path.line")) !== null;
  await page.screenshot({ path: path.join(shots, "group.png"), fullPage: true });

  await open(`#/messages?topic=${encodeURIComponent(spec.topic)}&by=key&value=${encodeURIComponent(spec.key)}`, "messages");
  await page.waitForSelector("[data-testid=found-count]", { timeout: 15000 });
  out.found = await num("[data-testid=found-count]");
  out.foundBodies = await page.$$eval("[data-testid=message-body]", (e) => e.map((x) => x.textContent));
  await page.click("a[data-detail='0']");
  out.fullBody = await page.textContent("[data-testid=message-full-body]");
  await page.screenshot({ path: path.join(shots, "messages.png"), fullPage: true });

  await open(`#/dlq/${encodeURIComponent(spec.dlqGroup)}`, "dlq");
  out.dlqCount = await num("[data-testid=dlq-count]");
  out.canResend = (await page.$("#resend")) !== null;
  if (out.canResend) {
    await page.check("input.pick >> nth=0");
    out.resendId = await page.getAttribute("input.pick >> nth=0", "value");
    await page.click("#resend");
    await page.waitForSelector("[data-testid=resend-result]", { timeout: 15000 });
    out.resendResult = await page.textContent("[data-testid=resend-result]");
  }
  await page.screenshot({ path: path.join(shots, "dlq.png"), fullPage: true });

  await open("#/alerts", "alerts");
  out.alertState = spec.alert ? await page.textContent(`[data-testid="alert-state-${spec.alert}"]`) : null;
  await page.screenshot({ path: path.join(shots, "alerts.png"), fullPage: true });
} catch (e) {
  out.failure = String(e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.failure || out.errors.length ? 1 : 0);
