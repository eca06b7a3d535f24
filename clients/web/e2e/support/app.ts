import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { expect, type Page } from "@playwright/test";
import { USERMGMT, apiEnv, runState } from "./env";

export type Person = { email: string; password: string; username: string; fullName: string };

/** A person no other test (or run) has met: a unique address and username, a long random passphrase. */
export function newPerson(tag: string): Person {
  const id = `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
  return {
    email: `${tag}-${id}@example.com`,
    password: `e2e ${randomBytes(12).toString("base64url")} passphrase`,
    username: `${tag}_${id}`.slice(0, 30),
    fullName: `${tag[0]!.toUpperCase()}${tag.slice(1)} Tester`,
  };
}

export function newPassword(): string {
  return `new ${randomBytes(12).toString("base64url")} passphrase`;
}

/** Register through /register (email and password only, unless `withNames`): the page signs in and goes to the profile. */
export async function register(page: Page, person: Person, { withNames = false } = {}): Promise<void> {
  await page.goto("/register");
  await expect(page.getByRole("heading", { level: 1, name: "Create an account" })).toBeVisible();
  await page.getByLabel("Email", { exact: true }).fill(person.email);
  await page.getByLabel("Password", { exact: true }).fill(person.password);
  if (withNames) {
    await page.getByLabel("Username (optional)").fill(person.username);
    await page.getByLabel("Full name (optional)").fill(person.fullName);
  }
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/profile\?welcome=1$/);
  await expect(page.getByRole("status").filter({ hasText: "Welcome! Your account is ready." })).toBeVisible();
  await expect(page.getByTestId("profile-email")).toContainText(person.email);
}

/** Fill in and send the sign-in form (no expectation on the outcome). */
export async function submitSignIn(page: Page, login: string, password: string): Promise<void> {
  if (!new URL(page.url(), "http://x").pathname.startsWith("/login")) await page.goto("/login");
  await expect(page.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
  await page.getByLabel("Email or username").fill(login);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

/** Sign in through /login and land on the profile. */
export async function signIn(page: Page, login: string, password: string): Promise<void> {
  await submitSignIn(page, login, password);
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByRole("heading", { level: 1, name: "Profile" })).toBeVisible();
  await expect(page.getByTestId("profile-email")).toBeVisible();
}

/**
 * The menu's "Sign out": signed out, on /login. (Where exactly it lands, /login?signed_out=1 with "You are signed
 * out.", is the test "signing out" of session.spec.ts: the other tests only need to be signed out.)
 */
export async function signOut(page: Page): Promise<void> {
  await nav(page).getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login(\?|$)/);
  await expect(page.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
  await expect(nav(page).getByRole("link", { name: "Sign in" })).toBeVisible();
}

/** The page's own alerts (Next.js has a role=alert route announcer of its own, outside <main>). */
export function alertOf(page: Page) {
  return page.locator("main").getByRole("alert");
}

export function nav(page: Page) {
  return page.getByRole("navigation", { name: "Main" });
}

/** An account made straight through the API (setup data for a test about someone else). */
export async function apiRegister(person: Person): Promise<{ id: string }> {
  const response = await fetch(`${runState().apiUrl}/api/v1/auth/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: person.email, password: person.password, username: person.username, full_name: person.fullName }),
  });
  if (response.status !== 201) throw new Error(`register ${person.email}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as { id: string };
}

/** Someone else guessing the password `times` times, straight at the API: "Failed sign-in" events in the history. */
export async function failSignIns(login: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const response = await fetch(`${runState().apiUrl}/api/v1/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "User-Agent": "e2e-guesser/1.0" },
      body: JSON.stringify({ login, password: `not the password ${i}` }),
    });
    if (response.status !== 401) throw new Error(`a wrong password for ${login}: HTTP ${response.status} ${await response.text()}`);
  }
}

/** `usermgmt create-admin EMAIL --password-stdin`, with the server's settings: an administrator, verified. */
export function createAdmin(person: Person): void {
  const state = runState();
  const result = spawnSync(USERMGMT, ["create-admin", person.email, "--password-stdin"], {
    env: apiEnv(state),
    cwd: state.dataDir,
    input: `${person.password}\n`,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (result.status !== 0) {
    throw new Error(`usermgmt create-admin failed (${result.status ?? result.error}): ${result.stdout}${result.stderr}`);
  }
}

/** Wait until the access token (4 seconds, USERMGMT_ACCESS_TOKEN_TTL=PT4S) has certainly expired. */
export async function outliveAccessToken(page: Page): Promise<void> {
  await page.waitForTimeout(5_000);
}
