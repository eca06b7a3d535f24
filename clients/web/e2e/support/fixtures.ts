import fs from "node:fs";
import { test as base, expect, type Browser, type BrowserContext, type BrowserContextOptions, type Page, type TestInfo } from "@playwright/test";
import { API_LOG, OIDC_LOG, WEB_LOG } from "./env";

/** Errors the browser reported (console.error, uncaught exceptions): any one fails the test, unless allowed. */
export type BrowserErrors = {
  /** Let messages matching `pattern` pass from now on (e.g. the 401 a wrong password answers, which the browser
   * logs as "Failed to load resource"); `context` limits it to one browser context. */
  allow(pattern: RegExp, context?: BrowserContext): void;
  watch(context: BrowserContext): void;
  readonly errors: string[];
};

type Fixtures = {
  browserErrors: BrowserErrors;
  serverLogs: void;
  /** Another device: a new browser context (its own cookies), watched for errors like the first, closed at the end. */
  newDevice: (options?: BrowserContextOptions) => Promise<{ context: BrowserContext; page: Page }>;
};

function guard(): BrowserErrors {
  const errors: string[] = [];
  const allowed: { pattern: RegExp; context?: BrowserContext }[] = [];
  const watched = new WeakSet<BrowserContext>();
  const record = (context: BrowserContext, message: string) => {
    if (allowed.some((rule) => (!rule.context || rule.context === context) && rule.pattern.test(message))) return;
    errors.push(message);
  };
  const watchPage = (context: BrowserContext, page: Page) => {
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      const where = message.location().url;
      record(context, `console.error on ${page.url()}: ${message.text()}${where ? ` (${where})` : ""}`);
    });
    page.on("pageerror", (error) => record(context, `uncaught error on ${page.url()}: ${error.stack ?? error.message}`));
  };
  return {
    errors,
    allow(pattern, context) {
      allowed.push({ pattern, context });
    },
    watch(context) {
      if (watched.has(context)) return;
      watched.add(context);
      context.pages().forEach((page) => watchPage(context, page));
      context.on("page", (page) => watchPage(context, page));
    },
  };
}

async function newContext(browser: Browser, testInfo: TestInfo, options: BrowserContextOptions = {}): Promise<BrowserContext> {
  const { baseURL, viewport } = testInfo.project.use;
  return browser.newContext({ baseURL, viewport, ...options });
}

/** The end of a server log since `offset`: what the servers said during one test. */
function logSince(file: string, offset: number, maxLines = 400): string {
  try {
    const text = fs.readFileSync(file).subarray(offset).toString("utf8");
    const lines = text.split("\n");
    return lines.length > maxLines ? lines.slice(-maxLines).join("\n") : text;
  } catch {
    return "";
  }
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

export const test = base.extend<Fixtures>({
  browserErrors: [
    async ({}, use) => {
      const errors = guard();
      await use(errors);
      expect(errors.errors, "the browser reported errors (console.error or an uncaught exception)").toEqual([]);
    },
    { auto: true },
  ],

  context: async ({ context, browserErrors }, use) => {
    browserErrors.watch(context);
    await use(context);
  },

  newDevice: async ({ browser, browserErrors }, use, testInfo) => {
    const contexts: BrowserContext[] = [];
    await use(async (options) => {
      const context = await newContext(browser, testInfo, options);
      browserErrors.watch(context);
      contexts.push(context);
      return { context, page: await context.newPage() };
    });
    for (const context of contexts) await context.close();
  },

  /** On a failure, the servers' output during the test: attached as files, and its end printed. */
  serverLogs: [
    async ({}, use, testInfo) => {
      const start = { api: sizeOf(API_LOG), web: sizeOf(WEB_LOG), oidc: sizeOf(OIDC_LOG) };
      await use();
      if (testInfo.status === testInfo.expectedStatus) return;
      for (const [name, file, offset] of [
        ["api-server.log", API_LOG, start.api],
        ["web-server.log", WEB_LOG, start.web],
        ["oidc-provider.log", OIDC_LOG, start.oidc],
      ] as const) {
        const text = logSince(file, offset);
        if (!text.trim()) continue;
        const path = testInfo.outputPath(name);
        fs.writeFileSync(path, text);
        await testInfo.attach(name, { path, contentType: "text/plain" });
        const tail = text.trimEnd().split("\n").slice(-25).join("\n");
        process.stderr.write(`\n--- the end of ${name} during "${testInfo.title}" (all of it: ${path}) ---\n${tail}\n---\n`);
      }
    },
    { auto: true },
  ],
});

export { expect };
