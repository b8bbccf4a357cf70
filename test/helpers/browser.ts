/**
 * Headless Chromium for tests of the HTML report and the web page: Debian's `chromium` driven by playwright-core,
 * which never downloads a browser of its own.
 *
 *   const reason = browserUnavailable();        // undefined when tests can run
 *   describe.skipIf(reason)(`in Chromium${reason ? ` (skipped: ${reason})` : ''}`, () => { … launchChromium() … });
 *
 * Outside CI a missing browser skips those tests with the reason; in CI (CI=true), where .ci/run installs it, a
 * missing browser is a failure: a skipped browser test there would prove nothing while looking green.
 */
import { existsSync } from 'node:fs';
import { type Browser, type Page, chromium } from 'playwright-core';

/** The browser binary; CLIP_IQA_CHROMIUM overrides it (another distribution, a local build). */
export const CHROMIUM_PATH = process.env.CLIP_IQA_CHROMIUM ?? '/usr/bin/chromium';

/** Flags for a quiet, offline-friendly, sandbox-less (containers, root) headless run. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
] as const;

const inCi = (): boolean => /^(1|true|yes)$/i.test(process.env.CI ?? '');

/**
 * Why browser tests cannot run here, or undefined when they can. Throws in CI, so that the test file fails
 * with the reason instead of skipping.
 */
export function browserUnavailable(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  const reason = `no Chromium at ${CHROMIUM_PATH}: install Debian's chromium (apt-get install chromium) or set CLIP_IQA_CHROMIUM`;
  if (inCi()) throw new Error(`Browser tests must run in CI, but ${reason}.`);
  return reason;
}

export async function launchChromium(): Promise<Browser> {
  const reason = browserUnavailable();
  if (reason) throw new Error(reason);
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_ARGS] });
}

/**
 * Records every request a page makes, and its console errors (a Content Security Policy violation is one), from
 * now on. Returns live arrays.
 */
export function watchPage(page: Page): { requests: string[]; consoleErrors: string[]; pageErrors: string[] } {
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  const pageErrors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  return { requests, consoleErrors, pageErrors };
}

/** Requests that left the page for anything but the file itself and inline data. */
export const externalRequests = (urls: readonly string[]): string[] => urls.filter((u) => !/^(file|data):/i.test(u));
