/**
 * Real browsers for tests: Debian's `chromium` and `firefox-esr`, driven by puppeteer-core (Chromium over
 * CDP, Firefox over WebDriver BiDi). Unlike the scripted BrowserDriver (oauth-client.ts), they enforce the
 * CSP each page sends, CORS, cookies and redirects exactly as a person's browser does.
 *
 * Each run gets a fresh profile in a temp folder (removed on close) and no background networking: the
 * test machine has no outside network, and a browser phoning home floods the log with refused
 * connections and slows everything down.
 *
 * A missing browser skips its suite with a loud warning, unless `GW_REQUIRE_BROWSERS=1` (CI), in which
 * case the suite fails.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, it } from 'vitest';

export type BrowserName = 'chromium' | 'firefox';

const EXECUTABLES: Record<BrowserName, string> = {
  chromium: process.env.GW_CHROMIUM ?? '/usr/bin/chromium',
  firefox: process.env.GW_FIREFOX ?? '/usr/bin/firefox-esr',
};

export const BROWSERS: BrowserName[] = ['chromium', 'firefox'];

/** Generous: the CI machine is shared and a browser's first start can take many seconds. */
export const BROWSER_TIMEOUT = 90_000;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox', // the CI container runs as root, where Chromium's sandbox cannot start
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--disable-dev-shm-usage',
];

/** Firefox prefs that stop background traffic (updates, telemetry, safe browsing, captive portal, push). */
const FIREFOX_PREFS: Record<string, unknown> = {
  'app.update.enabled': false,
  'app.update.auto': false,
  'app.normandy.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.provider.google4.updateURL': '',
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'browser.newtabpage.enabled': false,
  'browser.newtabpage.activity-stream.feeds.system.topsites': false,
  'browser.ping-centre.telemetry': false,
  'captivedetect.canonicalURL': '',
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'dom.push.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.update.enabled': false,
  'extensions.blocklist.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.http.speculative-parallel-limit': 0,
  'services.settings.server': 'http://127.0.0.1:9/',
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.server': '',
  // Custom-scheme and other navigations the tests do not need must not open dialogs.
  'browser.download.useDownloadDir': true,
};

/**
 * Gateway config for browser tests: browsers keep speculative keep-alive connections open that never carry
 * a request, so a graceful close would wait the whole default grace (10 s) for each gateway.
 */
export const BROWSER_GATEWAY_LIMITS = { limits: { shutdown_grace: 1 } } as const;

export function browserMissing(name: BrowserName): string | undefined {
  return existsSync(EXECUTABLES[name])
    ? undefined
    : `${name} not found at ${EXECUTABLES[name]} (set GW_${name.toUpperCase()} or install the Debian package)`;
}

/**
 * `describe.each` over both browsers; a browser that is missing gets a loud skip, or a failing test when
 * GW_REQUIRE_BROWSERS=1.
 */
export function describeBrowsers(title: string, body: (name: BrowserName) => void): void {
  for (const name of BROWSERS) {
    const missing = browserMissing(name);
    if (!missing) {
      describe(`${title} [${name}]`, () => body(name));
    } else if (process.env.GW_REQUIRE_BROWSERS === '1') {
      describe(`${title} [${name}]`, () => {
        it('needs the browser (GW_REQUIRE_BROWSERS=1)', () => {
          throw new Error(`${missing}, and GW_REQUIRE_BROWSERS=1 requires the real-browser tests to run`);
        });
      });
    } else {
      console.warn(`SKIPPED real-browser tests "${title}" in ${name}: ${missing}`);
      describe.skip(`${title} [${name}] (${missing})`, () => body(name));
    }
  }
}

export interface RealBrowser {
  name: BrowserName;
  browser: Browser;
  /** A new page in a new isolated context (own cookies), with CSP reports collected. */
  newPage(): Promise<WatchedPage>;
  close(): Promise<void>;
}

export interface WatchedPage {
  page: Page;
  /** Console messages that report a Content-Security-Policy violation (both browsers log them). */
  cspViolations: string[];
  /** Every console message, for failure messages. */
  console: string[];
  close(): Promise<void>;
}

const CSP_MESSAGE = /content[- ]security[- ]policy|violates the following|form-action/i;

/**
 * The browser of a `describeBrowsers` block: launched before its tests, closed after them. Call it in the
 * block's body; `newPage()` works from the tests on.
 */
export function useBrowser(name: BrowserName): Pick<RealBrowser, 'name' | 'newPage'> {
  let launched: RealBrowser | undefined;
  beforeAll(async () => {
    launched = await launchBrowser(name);
  }, BROWSER_TIMEOUT);
  afterAll(async () => launched?.close());
  return {
    name,
    newPage: () => {
      if (!launched) throw new Error(`${name} was not launched (useBrowser must be called in a describe block)`);
      return launched.newPage();
    },
  };
}

export async function launchBrowser(name: BrowserName): Promise<RealBrowser> {
  const profile = mkdtempSync(join(tmpdir(), `gw-${name}-`));
  const browser =
    name === 'chromium'
      ? await puppeteer.launch({
          browser: 'chrome',
          executablePath: EXECUTABLES.chromium,
          headless: true,
          userDataDir: profile,
          args: CHROMIUM_ARGS,
          protocolTimeout: BROWSER_TIMEOUT,
          timeout: BROWSER_TIMEOUT,
        })
      : await puppeteer.launch({
          browser: 'firefox',
          executablePath: EXECUTABLES.firefox,
          headless: true,
          userDataDir: profile,
          extraPrefsFirefox: FIREFOX_PREFS,
          protocolTimeout: BROWSER_TIMEOUT,
          timeout: BROWSER_TIMEOUT,
        });
  return {
    name,
    browser,
    async newPage(): Promise<WatchedPage> {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      page.setDefaultTimeout(BROWSER_TIMEOUT);
      page.setDefaultNavigationTimeout(BROWSER_TIMEOUT);
      const watched: WatchedPage = {
        page,
        cspViolations: [],
        console: [],
        close: () => context.close(),
      };
      // Firefox does not pass CSP reports to the console over BiDi; the DOM event works in both. The
      // listener is installed by the driver (not an inline script), so the page's CSP does not stop it.
      await page.exposeFunction('__gwCspViolation', (text: string) => void watched.cspViolations.push(text));
      await page.evaluateOnNewDocument(
        "document.addEventListener('securitypolicyviolation', (e) => window.__gwCspViolation(e.effectiveDirective + ' blocked ' + e.blockedURI + ' on ' + e.documentURI));",
      );
      page.on('console', (msg) => {
        const text = msg.text();
        watched.console.push(`${msg.type()}: ${text}`);
        if (CSP_MESSAGE.test(text)) watched.cspViolations.push(text);
      });
      return watched;
    },
    async close() {
      try {
        await browser.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}
