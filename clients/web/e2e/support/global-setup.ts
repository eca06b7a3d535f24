import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { FullConfig } from "@playwright/test";
import {
  API_LOG,
  GOOGLE_CLIENT,
  OIDC_DIR,
  OIDC_LOG,
  PG,
  RUN_DIR,
  STATE_FILE,
  USERMGMT,
  WEB_DIR,
  WEB_LOG,
  apiEnv,
  exportState,
  type RunState,
} from "./env";
import { stopRun } from "./global-teardown";

/**
 * A fresh world for the suite: a new PostgreSQL database, migrated; a test OpenID Provider that plays Google
 * (tests/support/oidc/provider.mjs); the API on a free port (mail written as .eml files into a temp folder, access
 * tokens of 4 seconds, generous rate limits, Google pointed at that provider); and the built client (`next start`)
 * on another free port, talking to that API. The ports come from playwright.config.ts (chosen there, so that
 * use.baseURL can name the client's).
 */
export default async function globalSetup(_config: FullConfig): Promise<void> {
  const apiPort = Number(process.env.USERMGMT_E2E_API_PORT);
  const webPort = Number(process.env.USERMGMT_E2E_WEB_PORT);
  const oidcPort = Number(process.env.USERMGMT_E2E_OIDC_PORT);
  if (!apiPort || !webPort || !oidcPort) throw new Error("playwright.config.ts did not choose the ports (USERMGMT_E2E_*_PORT)");
  fs.mkdirSync(RUN_DIR, { recursive: true });
  for (const log of [API_LOG, WEB_LOG, OIDC_LOG]) fs.writeFileSync(log, "");

  const database = `usermgmt_web_e2e_${process.pid}_${Date.now().toString(36)}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "usermgmt-web-e2e-"));
  const state: RunState = {
    apiUrl: `http://127.0.0.1:${apiPort}`,
    webUrl: `http://127.0.0.1:${webPort}`,
    database,
    databaseUrl: `postgresql+asyncpg://${PG.user}@${PG.host}:${PG.port}/${database}`,
    dataDir,
    mailDir: path.join(dataDir, "mail"),
    oidcUrl: `http://127.0.0.1:${oidcPort}`,
  };
  const save = () => fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
  save();
  try {
    ensureBuilt();
    state.oidcPid = startProvider(state, oidcPort);
    save();
    psql(`CREATE DATABASE "${database}"`);
    const env = apiEnv(state);
    run(USERMGMT, ["migrate"], env, dataDir);
    await waitForLine(OIDC_LOG, `listening ${state.oidcUrl}`, "the OpenID Provider", state.oidcPid);

    state.apiPid = start(USERMGMT, ["serve", "--host", "127.0.0.1", "--port", String(apiPort)], env, dataDir, API_LOG);
    save();
    await waitFor(`${state.apiUrl}/readyz`, "the API", API_LOG, state.apiPid);

    const nextBin = require.resolve("next/dist/bin/next", { paths: [WEB_DIR] });
    const webEnv: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: "production", USERMGMT_API_URL: state.apiUrl };
    delete webEnv.USERMGMT_API_PUBLIC_URL;
    delete webEnv.PORT;
    state.webPid = start(process.execPath, [nextBin, "start", "-p", String(webPort), "-H", "127.0.0.1"], webEnv, WEB_DIR, WEB_LOG);
    save();
    await waitFor(`${state.webUrl}/login`, "the web client", WEB_LOG, state.webPid);
  } catch (error) {
    await stopRun(state);
    throw error;
  }
  exportState(state);
  process.stdout.write(
    `e2e: API ${state.apiUrl}, client ${state.webUrl}, provider ${state.oidcUrl}, database ${database}; logs in ${RUN_DIR}\n`,
  );
}

/**
 * The OpenID Provider that plays Google (`node provider.mjs <config.json>`, see its header), with one client: the
 * API, calling back at its own /api/v1/auth/oauth/google/callback.
 */
function startProvider(state: RunState, port: number): number {
  if (!fs.existsSync(path.join(OIDC_DIR, "node_modules", "oidc-provider"))) {
    throw new Error(`the test OpenID Provider's npm packages are missing in ${OIDC_DIR}: run \`make oidc-provider\` at the repository's root`);
  }
  const config = path.join(state.dataDir, "oidc-provider.json");
  const client = {
    client_id: GOOGLE_CLIENT.id,
    client_secret: GOOGLE_CLIENT.secret,
    redirect_uris: [`${state.apiUrl}/api/v1/auth/oauth/google/callback`],
  };
  fs.writeFileSync(config, JSON.stringify({ port, clients: [client] }));
  const env = {} as NodeJS.ProcessEnv;
  for (const name of ["PATH", "HOME", "LANG", "TMPDIR"]) if (process.env[name]) env[name] = process.env[name];
  return start(process.execPath, [path.join(OIDC_DIR, "provider.mjs"), config], env, OIDC_DIR, OIDC_LOG);
}

/** The Makefile builds before the suite; a bare `npx playwright test` on a fresh checkout builds here. */
function ensureBuilt(): void {
  if (fs.existsSync(path.join(WEB_DIR, ".next", "BUILD_ID"))) return;
  process.stdout.write("e2e: no build in .next: running `next build` first\n");
  const nextBin = require.resolve("next/dist/bin/next", { paths: [WEB_DIR] });
  const result = spawnSync(process.execPath, [nextBin, "build"], { cwd: WEB_DIR, stdio: "inherit", timeout: 600_000 });
  if (result.status !== 0) throw new Error("`next build` failed: see its output above");
}

export function psql(sql: string): void {
  const result = spawnSync("psql", ["-h", PG.host, "-p", PG.port, "-U", PG.user, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], {
    encoding: "utf8",
    timeout: 60_000,
  });
  if (result.status !== 0) {
    throw new Error(`psql -c '${sql}' failed (PostgreSQL at ${PG.host}:${PG.port}, user ${PG.user}): ${result.stderr || result.error}`);
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): void {
  const result = spawnSync(command, args, { env, cwd, encoding: "utf8", timeout: 120_000 });
  fs.appendFileSync(API_LOG, `$ usermgmt ${args.join(" ")}\n${result.stdout ?? ""}${result.stderr ?? ""}\n`);
  if (result.status !== 0) {
    throw new Error(`usermgmt ${args.join(" ")} failed (${result.status ?? result.error}):\n${result.stdout}${result.stderr}`);
  }
}

/** A server in its own process group (the teardown ends the group), its output appended to `log`. */
function start(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, log: string): number {
  const out = fs.openSync(log, "a");
  const child = spawn(command, args, { env, cwd, detached: true, stdio: ["ignore", out, out] });
  fs.closeSync(out);
  if (!child.pid) throw new Error(`could not start ${command}`);
  child.unref();
  return child.pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Until `log` has a line `line` (a server that says when it listens). */
async function waitForLine(log: string, line: string, what: string, pid: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && alive(pid)) {
    if (fs.readFileSync(log, "utf8").split("\n").includes(line)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const tail = fs.readFileSync(log, "utf8").split("\n").slice(-40).join("\n");
  throw new Error(`${what} did not say "${line}" (${alive(pid) ? "in time" : "it exited"}); the end of ${log}:\n${tail}`);
}

async function waitFor(url: string, what: string, log: string, pid: number, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (!alive(pid)) break;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (response.ok) return;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const tail = fs.readFileSync(log, "utf8").split("\n").slice(-40).join("\n");
  throw new Error(`${what} did not answer at ${url} (${alive(pid) ? last : "it exited"}); the end of ${log}:\n${tail}`);
}
