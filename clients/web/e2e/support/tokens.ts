import { expect, type Page } from "@playwright/test";

/** The client's token cookies (HttpOnly, Path=/bff): what page script must never read. */
export const TOKEN_COOKIES = ["usermgmt_access", "usermgmt_refresh"];
export const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}/;
/** A refresh token is 43 base64url characters (32 random bytes); anything that long and opaque looks like one. */
export const OPAQUE = /[A-Za-z0-9_-]{40,}/;

/** Everything page JavaScript can read: document.cookie and both storages. */
async function readable(page: Page): Promise<{ cookie: string; storage: [string, string][] }> {
  return page.evaluate(() => {
    const entries = (store: Storage) =>
      Array.from({ length: store.length }, (_, i) => store.key(i)!).map((key) => [key, store.getItem(key) ?? ""] as [string, string]);
    return { cookie: document.cookie, storage: [...entries(localStorage), ...entries(sessionStorage)] };
  });
}

/** Neither the token cookies nor anything token-like, nor any of `tokens`, in what the page's script can read. */
export async function expectNoTokenReadable(page: Page, tokens: string[]): Promise<void> {
  const { cookie, storage } = await readable(page);
  for (const name of TOKEN_COOKIES) expect(cookie, `document.cookie on ${page.url()}`).not.toContain(name);
  expect(cookie).not.toMatch(JWT);
  expect(cookie).not.toMatch(OPAQUE);
  for (const [key, value] of storage) {
    expect(value, `storage item ${key} on ${page.url()}`).not.toMatch(JWT);
    for (const token of tokens) expect(value, `storage item ${key}`).not.toContain(token);
  }
  for (const token of tokens) expect(cookie).not.toContain(token);
}

/** The browser's token cookies (as the browser holds them, not as the page sees them). */
export async function tokenCookies(page: Page) {
  const cookies = await page.context().cookies();
  return cookies.filter((cookie) => TOKEN_COOKIES.includes(cookie.name));
}
