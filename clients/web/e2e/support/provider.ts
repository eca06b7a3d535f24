import { randomBytes } from "node:crypto";
import { expect, type Page } from "@playwright/test";
import { runState } from "./env";

/**
 * The test OpenID Provider that plays Google (tests/support/oidc/provider.mjs, started by the global setup): its
 * accounts, and a person at its pages in the browser (oidc-provider's devInteractions: a login form, any
 * password, the login being the account's sub; then a consent page).
 */
export type ProviderAccount = { sub: string; email: string; email_verified: boolean; name?: string };

/** A `sub` no other test (or run) has used. */
export function newSub(tag: string): string {
  return `${tag}-${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

/** Add an account at the provider (its test route POST /__test/accounts). */
export async function addProviderAccount(account: ProviderAccount): Promise<void> {
  const response = await fetch(`${runState().oidcUrl}/__test/accounts`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(account),
  });
  if (response.status !== 204) throw new Error(`POST /__test/accounts ${account.sub}: HTTP ${response.status} ${await response.text()}`);
}

/**
 * Do what sends the browser to the provider (`go`: "Continue with Google", "Link Google"), then sign in there as
 * `sub` and consent. Ends once the browser has left the provider (back at the client, through the API's callback).
 */
export async function throughProvider(page: Page, sub: string, go: () => Promise<void>): Promise<void> {
  const issuer = runState().oidcUrl;
  // The provider's pages @import a Google Fonts stylesheet, and the browser asks it for a favicon it has not:
  // answered here, empty, lest they fail (no network) as console errors, which fail the test.
  await page.context().route(/^https:\/\/fonts\.(googleapis|gstatic)\.com\//, (route) =>
    route.fulfill({ status: 200, contentType: "text/css", body: "" }),
  );
  await page.context().route(`${issuer}/favicon.ico`, (route) => route.fulfill({ status: 204 }));
  await go();
  await expect(page).toHaveURL((url) => url.origin === issuer && url.pathname.startsWith("/interaction/"));
  await expect(page.getByRole("heading", { level: 1, name: "Sign-in" })).toBeVisible();
  await page.locator('input[name="login"]').fill(sub);
  await page.locator('input[name="password"]').fill("any password will do");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Authorize" })).toBeVisible();
  await page.getByRole("button", { name: "Continue" }).click();
  await expect(page).toHaveURL((url) => url.origin !== issuer);
}
