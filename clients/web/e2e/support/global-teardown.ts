import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { PG, RUN_DIR, STATE_FILE, type RunState } from "./env";

/** Stops the servers and the OpenID Provider (their whole process groups) and drops the run's database and temp folder. */
export default async function globalTeardown(): Promise<void> {
  if (!fs.existsSync(STATE_FILE)) return;
  const state = JSON.parse(fs.readFileSync(STATE_FILE, "utf8")) as RunState;
  await stopRun(state);
  process.stdout.write(`e2e: servers stopped, database ${state.database} dropped; server logs kept in ${RUN_DIR}\n`);
}

export async function stopRun(state: RunState): Promise<void> {
  await Promise.all([state.webPid, state.apiPid, state.oidcPid].map((pid) => (pid ? stopGroup(pid) : undefined)));
  const drop = spawnSync(
    "psql",
    ["-h", PG.host, "-p", PG.port, "-U", PG.user, "-d", "postgres", "-qc", `DROP DATABASE IF EXISTS "${state.database}" WITH (FORCE)`],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (drop.status !== 0) process.stderr.write(`e2e: could not drop database ${state.database}: ${drop.stderr}\n`);
  if (state.dataDir && !process.env.E2E_KEEP_DATA) fs.rmSync(state.dataDir, { recursive: true, force: true });
  fs.rmSync(STATE_FILE, { force: true });
}

async function stopGroup(pid: number): Promise<void> {
  const signal = (name: NodeJS.Signals | 0): boolean => {
    try {
      process.kill(-pid, name);
      return true;
    } catch {
      return false;
    }
  };
  if (!signal("SIGTERM")) return;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (!signal(0)) return;
  }
  signal("SIGKILL");
}
