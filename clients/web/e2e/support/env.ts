import fs from "node:fs";
import path from "node:path";

/** clients/web */
export const WEB_DIR = path.resolve(__dirname, "..", "..");
/** Logs and the run's state: git-ignored (clients/web/.gitignore lists e2e/.run/). */
export const RUN_DIR = path.join(WEB_DIR, "e2e", ".run");
export const STATE_FILE = path.join(RUN_DIR, "state.json");
export const API_LOG = path.join(RUN_DIR, "api.log");
export const WEB_LOG = path.join(RUN_DIR, "web.log");
export const OIDC_LOG = path.join(RUN_DIR, "oidc.log");
/** The API's command line, from the repository's virtual environment. */
export const USERMGMT = path.resolve(WEB_DIR, "..", "..", ".venv", "bin", "usermgmt");
export const ALEMBIC_INI = path.resolve(WEB_DIR, "..", "..", "alembic.ini");
/** The test OpenID Provider (panva's oidc-provider) that plays Google: its npm packages come from `make oidc-provider`. */
export const OIDC_DIR = path.resolve(WEB_DIR, "..", "..", "tests", "support", "oidc");
/** The client the API is registered as at that provider (USERMGMT_OAUTH_GOOGLE_CLIENT_ID and _SECRET). */
export const GOOGLE_CLIENT = { id: "google-e2e", secret: "google-e2e-client-secret" };

/** What the global setup started, for the tests (through process.env) and for the teardown (through the file). */
export type RunState = {
  apiUrl: string;
  webUrl: string;
  database: string;
  databaseUrl: string;
  dataDir: string;
  mailDir: string;
  /** The provider's issuer, http://127.0.0.1:<port>: the API's USERMGMT_OAUTH_GOOGLE_ISSUER. */
  oidcUrl: string;
  apiPid?: number;
  webPid?: number;
  oidcPid?: number;
};

export const PG = { host: "127.0.0.1", port: "5432", user: "postgres" };

/** The run's state as the setup exported it (process.env), or as it wrote it (the file). */
export function runState(): RunState {
  if (process.env.E2E_API_URL && process.env.E2E_DATABASE_URL) {
    return {
      apiUrl: process.env.E2E_API_URL,
      webUrl: process.env.E2E_WEB_URL ?? "",
      database: process.env.E2E_DATABASE ?? "",
      databaseUrl: process.env.E2E_DATABASE_URL,
      dataDir: process.env.E2E_DATA_DIR ?? "",
      mailDir: process.env.E2E_MAIL_DIR ?? "",
      oidcUrl: process.env.E2E_OIDC_URL ?? "",
    };
  }
  return JSON.parse(fs.readFileSync(STATE_FILE, "utf8")) as RunState;
}

export function exportState(state: RunState): void {
  process.env.E2E_API_URL = state.apiUrl;
  process.env.E2E_WEB_URL = state.webUrl;
  process.env.E2E_DATABASE = state.database;
  process.env.E2E_DATABASE_URL = state.databaseUrl;
  process.env.E2E_DATA_DIR = state.dataDir;
  process.env.E2E_MAIL_DIR = state.mailDir;
  process.env.E2E_OIDC_URL = state.oidcUrl;
}

/** Generous limits: the suite signs in and registers far more often than a person, and must never meet a 429. */
const RATE_LIMITS: Record<string, string> = {
  LOGIN_PER_IP: "10000/1m",
  LOGIN_FAILURES_PER_ACCOUNT_IP: "1000/15m",
  LOGIN_FAILURES_PER_ACCOUNT: "1000/15m",
  REGISTRATIONS_PER_IP: "10000/1h",
  REFRESHES_PER_SESSION: "1000/1m",
  REFRESH_FAILURES_PER_IP: "1000/1m",
  PROFILE_UPDATES_PER_USER: "1000/15m",
  PASSWORD_CHANGES_PER_USER: "1000/15m",
  DELETIONS_PER_USER: "1000/15m",
  PASSWORD_FORGOT_PER_IP: "1000/1h",
  PASSWORD_RESET_EMAILS_PER_ACCOUNT: "1000/1h",
  VERIFICATION_EMAILS_PER_USER: "1000/1h",
  EMAIL_CHANGES_PER_USER: "1000/1h",
  MFA_CHANGES_PER_USER: "1000/15m",
  ADMIN_REQUESTS_PER_ACTOR: "10000/1m",
  DATA_EXPORTS_PER_USER: "1000/1h",
};

/** The environment of the API's server and of its command line (migrate, create-admin): the same settings. */
export function apiEnv(state: Pick<RunState, "apiUrl" | "databaseUrl" | "dataDir" | "webUrl" | "oidcUrl">): NodeJS.ProcessEnv {
  const env = {} as NodeJS.ProcessEnv;
  // Only what the API needs from this environment: none of the caller's USERMGMT_* settings leak in.
  for (const name of ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"]) {
    if (process.env[name]) env[name] = process.env[name];
  }
  Object.assign(env, {
    USERMGMT_ENVIRONMENT: "development",
    USERMGMT_DATABASE_URL: state.databaseUrl,
    USERMGMT_DATA_DIR: state.dataDir,
    USERMGMT_ALEMBIC_INI: ALEMBIC_INI,
    USERMGMT_ACCESS_TOKEN_TTL: "PT4S",
    USERMGMT_TRUSTED_PROXIES: "127.0.0.1",
    USERMGMT_FRONTEND_URL: state.webUrl,
    USERMGMT_BCRYPT_ROUNDS: "10",
    // "Continue with Google", Google being the test provider: the browser goes API → provider → API callback →
    // the client's /bff/oauth/callback (both on 127.0.0.1, so the API's state cookie is not Secure).
    USERMGMT_PUBLIC_URL: state.apiUrl,
    USERMGMT_OAUTH_REDIRECT_URIS: `${state.webUrl}/bff/oauth/callback`,
    USERMGMT_OAUTH_GOOGLE_CLIENT_ID: GOOGLE_CLIENT.id,
    USERMGMT_OAUTH_GOOGLE_CLIENT_SECRET: GOOGLE_CLIENT.secret,
    USERMGMT_OAUTH_GOOGLE_ISSUER: state.oidcUrl,
    PYTHONUNBUFFERED: "1",
  });
  for (const [rule, rate] of Object.entries(RATE_LIMITS)) env[`USERMGMT_RATE_LIMIT_${rule}`] = rate;
  return env;
}
