import { expect, test } from "./support/fixtures";
import { newPerson, outliveAccessToken, register } from "./support/app";
import { JWT, TOKEN_COOKIES, expectNoTokenReadable, tokenCookies } from "./support/tokens";

test("no token is readable from page JavaScript; the cookies are HttpOnly, SameSite=Lax, Path=/bff", async ({ page, browserErrors }) => {
  const person = newPerson("cookies");
  await register(page, person);

  const cookies = await tokenCookies(page);
  expect(cookies.map((cookie) => cookie.name).sort()).toEqual([...TOKEN_COOKIES].sort());
  for (const cookie of cookies) {
    expect(cookie, cookie.name).toMatchObject({ httpOnly: true, sameSite: "Lax", path: "/bff" });
  }
  const first = cookies.map((cookie) => cookie.value);
  expect(first.find((value) => JWT.test(value)), "the access token is a JWT").toBeTruthy();

  await expectNoTokenReadable(page, first);
  // Even on a page under /bff, where the browser does send these cookies, script cannot read them.
  await page.goto("/bff/session");
  await expect(page.locator("body")).toContainText('"signed_in":true');
  await expectNoTokenReadable(page, first);

  await test.step("after a refresh", async () => {
    await page.goto("/profile");
    await outliveAccessToken(page);
    await page.reload();
    await expect(page.getByTestId("profile-email")).toContainText(person.email);
    const refreshed = await tokenCookies(page);
    const values = refreshed.map((cookie) => cookie.value);
    expect(values.some((value) => !first.includes(value)), "the tokens were renewed").toBe(true);
    for (const cookie of refreshed) expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Lax", path: "/bff" });
    await expectNoTokenReadable(page, [...first, ...values]);
  });
});

test("a cross-site POST to /bff/session is refused: 403 origin_mismatch", async ({ request }) => {
  const person = newPerson("csrf");
  const response = await request.post("/bff/session", {
    headers: { Origin: "http://evil.example" },
    data: { login: person.email, password: person.password },
  });
  expect(response.status()).toBe(403);
  expect(response.headers()["content-type"]).toContain("application/problem+json");
  expect(await response.json()).toMatchObject({ status: 403, code: "origin_mismatch" });
  expect(response.headers()["set-cookie"] ?? "").not.toMatch(/usermgmt_/);

  // The same for the other routes that change something.
  for (const [method, path] of [
    ["DELETE", "/bff/session"],
    ["POST", "/bff/session/mfa"],
    ["PATCH", "/bff/api/v1/users/me"],
    ["POST", "/bff/api/v1/auth/register"],
  ] as const) {
    const answer = await request.fetch(path, { method, headers: { Origin: "http://evil.example" }, data: {} });
    expect(answer.status(), `${method} ${path}`).toBe(403);
    expect((await answer.json()).code, `${method} ${path}`).toBe("origin_mismatch");
  }
});
