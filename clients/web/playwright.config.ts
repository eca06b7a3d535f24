import { execFileSync } from "node:child_process";
import { defineConfig, type PlaywrightTestConfig } from "@playwright/test";

/**
 * Browser end-to-end tests of the client against a real API (see e2e/support/global-setup.ts).
 *
 *   npx next build && npx playwright test      # the suite (the Makefile builds first)
 *   npm run screenshots                        # the docs' screenshots, into docs/screenshots/
 *
 * The ports are chosen here, once, in the runner's process (the workers inherit them through the environment),
 * so that use.baseURL names the client's port; the global setup starts the servers on them.
 */
function freePorts(count: number): number[] {
  const script = `
    const net = require("net");
    const taken = new Set([8765, 3765]);
    const ports = [];
    const servers = [];
    (function next() {
      if (ports.length === ${count}) { console.log(ports.join(" ")); servers.forEach((s) => s.close()); return; }
      const server = net.createServer();
      server.listen(0, "127.0.0.1", () => {
        const port = server.address().port;
        servers.push(server);
        if (!taken.has(port)) ports.push(port);
        next();
      });
    })();`;
  return execFileSync(process.execPath, ["-e", script], { encoding: "utf8" }).trim().split(" ").map(Number);
}

if (!process.env.USERMGMT_E2E_API_PORT || !process.env.USERMGMT_E2E_WEB_PORT || !process.env.USERMGMT_E2E_OIDC_PORT) {
  const [api, web, oidc] = freePorts(3);
  process.env.USERMGMT_E2E_API_PORT = String(api);
  process.env.USERMGMT_E2E_WEB_PORT = String(web);
  process.env.USERMGMT_E2E_OIDC_PORT = String(oidc); // the test OpenID Provider that plays Google
}
const baseURL = `http://127.0.0.1:${process.env.USERMGMT_E2E_WEB_PORT}`;

const browser = {
  browserName: "chromium" as const,
  headless: true,
  launchOptions: {
    executablePath: "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  },
};

const projects: PlaywrightTestConfig["projects"] = [
  { name: "e2e", grepInvert: /@screenshots/, use: { ...browser, viewport: { width: 1280, height: 800 } } },
];
// The docs' screenshots: not part of the suite; `npm run screenshots` sets the variable and picks the project.
if (process.env.USERMGMT_E2E_SCREENSHOTS) {
  projects.push({
    name: "screenshots",
    grep: /@screenshots/,
    use: {
      ...browser,
      viewport: { width: 1024, height: 768 },
      // What the sessions page shows for "this device": an ordinary desktop browser, not HeadlessChrome.
      userAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
    },
  });
}

export default defineConfig({
  testDir: "./e2e",
  outputDir: "./test-results",
  globalSetup: "./e2e/support/global-setup.ts",
  globalTeardown: "./e2e/support/global-teardown.ts",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: Boolean(process.env.CI),
  timeout: 45_000,
  expect: { timeout: 8_000 },
  reporter: [["list"], ["html", { open: "never", outputFolder: "playwright-report" }]],
  use: {
    baseURL,
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
    video: "off",
    actionTimeout: 10_000,
    navigationTimeout: 15_000,
  },
  projects,
});
