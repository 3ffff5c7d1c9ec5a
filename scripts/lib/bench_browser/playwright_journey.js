// The bench's browser journey with Playwright: the same Chromium binary, the
// same page, the same actions as geoctl's driver (goto and wait for load,
// click, wait for the element), then close.
// Usage: PLAYWRIGHT_CORE=dir/node_modules/playwright-core CHROMIUM=/usr/bin/chromium node playwright_journey.js URL
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true });
  try {
    const page = await browser.newPage();
    await page.goto(process.argv[2], { waitUntil: 'load', timeout: 30000 });
    await page.click('#load', { timeout: 30000 });
    await page.waitForSelector('#result', { timeout: 30000 });
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
