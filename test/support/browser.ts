import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { TestContext } from "node:test";
import type { Browser, ConsoleMessage, Page } from "playwright-core";
import { testArtifactsDir } from "./images.ts";

/**
 * Browser tests drive Debian's Chromium through playwright-core (no browser download, ever:
 * `apt-get install chromium`). Each page records console errors and uncaught exceptions, so a
 * test can assert there were none.
 */
export const CHROMIUM = process.env.PITH_CHROMIUM ?? "/usr/bin/chromium";

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why browser tests cannot run here, or undefined when they can. */
export function missingForBrowser(): string | undefined {
  if (!existsSync(CHROMIUM)) return `needs Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
  try {
    createRequire(import.meta.url).resolve("playwright-core");
  } catch {
    return "needs playwright-core (npm install)";
  }
  return undefined;
}

export const screenshotsDir = (): string => join(testArtifactsDir(), "screenshots");

export interface TrackedPage {
  page: Page;
  /** Console errors and uncaught exceptions, in order. */
  errors: string[];
  /** Saves a full-page PNG under .test-artifacts/screenshots/<name>.png and returns its path. */
  screenshot(name: string): Promise<string>;
}

export class TestBrowser {
  private constructor(readonly browser: Browser) {}

  /** Launches headless Chromium; it is closed when the test ends. */
  static async launch(t: TestContext): Promise<TestBrowser> {
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000 });
    const wrapper = new TestBrowser(browser);
    t.after(() => browser.close().catch(() => {}));
    return wrapper;
  }

  async newPage(viewport = { width: 1280, height: 800 }): Promise<TrackedPage> {
    const context = await this.browser.newContext({ viewport, reducedMotion: "reduce" });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.setDefaultNavigationTimeout(30_000);
    const errors: string[] = [];
    page.on("console", (message: ConsoleMessage) => {
      if (message.type() === "error") errors.push(`console: ${message.text()} (${message.location().url})`);
    });
    page.on("pageerror", (error: Error) => errors.push(`pageerror: ${error.message}`));
    return {
      page,
      errors,
      async screenshot(name: string) {
        mkdirSync(screenshotsDir(), { recursive: true });
        const path = join(screenshotsDir(), `${name}.png`);
        await page.screenshot({ path, fullPage: true, timeout: 30_000 });
        return path;
      },
    };
  }
}
