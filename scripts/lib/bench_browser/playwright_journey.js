// The bench's browser journey with Playwright: the same Chromium binary, the
// same page, the same actions as geoctl's driver (goto and wait for load,
// click, wait for the element), then close.
// Usage: PLAYWRIGHT_CORE=dir/node_modules/playwright-core CHROMIUM=/usr/bin/chromium node playwright_journey.js URL
//          one journey
//        ... node playwright_journey.js URL CONCURRENCY SECONDS
//          journeys back to back, CONCURRENCY at a time, for SECONDS; each in a fresh
//          browser, as geoctl's agent runs each journey; a JSON line of the counts on stdout
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

async function journey(url) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true });
  try {
    const page = await browser.newPage();
    await page.goto(url, { waitUntil: 'load', timeout: 30000 });
    await page.click('#load', { timeout: 30000 });
    await page.waitForSelector('#result', { timeout: 30000 });
  } finally {
    await browser.close();
  }
}

async function loop(url, concurrency, seconds) {
  const deadline = Date.now() + seconds * 1000;
  const counts = { journeys: 0, failures: 0 };
  const ms = [];
  const started = Date.now();
  const worker = async () => {
    while (Date.now() < deadline) {
      const t0 = Date.now();
      try {
        await journey(url);
        counts.journeys += 1;
        ms.push(Date.now() - t0);
      } catch (e) {
        counts.failures += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  ms.sort((a, b) => a - b);
  console.log(JSON.stringify({
    concurrency, seconds: (Date.now() - started) / 1000, ...counts,
    journey_ms_p50: ms.length ? ms[Math.floor(ms.length / 2)] : null,
  }));
}

const [url, concurrency, seconds] = process.argv.slice(2);
(concurrency ? loop(url, Number(concurrency), Number(seconds)) : journey(url)).catch((e) => {
  console.error(e);
  process.exit(1);
});
