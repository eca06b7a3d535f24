import * as OTPAuth from "otpauth";
import { expect, test } from "./support/fixtures";
import { nav, newPerson, register, signOut, submitSignIn } from "./support/app";

function totp(secret: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ algorithm: "SHA1", digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(secret.replace(/[\s-]/g, "")) });
}

test("two-factor authentication: turn it on, sign in with a recovery code and with a later code, new codes, turn it off", async ({ page, browserErrors }) => {
  test.setTimeout(60_000);
  // The first step's answer is 403 mfa_required, which the browser logs as a failed resource load.
  browserErrors.allow(/status of 403 \(Forbidden\) \(http:\/\/[^)]+\/bff\/session\)$/);
  const person = newPerson("totp");
  await register(page, person);

  let secret = "";
  let codes: string[] = [];
  await test.step("turn it on from /security", async () => {
    await nav(page).getByRole("link", { name: "Security" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Security" })).toBeVisible();
    await expect(page.getByRole("heading", { level: 2, name: "Two-factor authentication" })).toBeVisible();
    await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
    await page.getByLabel("Current password").fill(person.password);
    await page.getByRole("button", { name: "Continue" }).click();
    await expect(page.getByTestId("totp-qr")).toBeVisible();
    await expect(page.getByTestId("totp-qr").locator("svg, img").first()).toBeVisible();
    secret = (await page.getByTestId("totp-secret").innerText()).trim();
    expect(secret.replace(/[\s-]/g, "")).toMatch(/^[A-Z2-7]+=*$/);
    await page.getByLabel("Code from your app").fill(totp(secret).generate());
    await page.getByRole("button", { name: "Turn on" }).click();
    const list = page.getByTestId("recovery-codes");
    await expect(list.locator("li")).toHaveCount(10);
    codes = (await list.locator("li").allInnerTexts()).map((code) => code.trim());
    for (const code of codes) expect(code).toMatch(/^[a-z0-9]{5}-[a-z0-9]{5}$/i);
    await page.getByRole("button", { name: "I have saved these codes" }).click();
    await expect(page.getByText("Two-factor authentication is on.")).toBeVisible();
  });

  await test.step("sign out, sign in: the second step takes a recovery code", async () => {
    await signOut(page);
    await page.goto("/login");
    await submitSignIn(page, person.email, person.password);
    await expect(page.getByRole("heading", { level: 1, name: "Two-factor authentication" })).toBeVisible();
    await page.getByLabel("Authentication code").fill(codes[0]!);
    await page.getByRole("button", { name: "Verify" }).click();
    await expect(page).toHaveURL(/\/profile$/);
    await expect(page.getByTestId("profile-email")).toContainText(person.email);
  });

  await test.step("again, with the code of the next time step (the step used to turn it on is spent)", async () => {
    await signOut(page);
    await page.goto("/login");
    await submitSignIn(page, person.email, person.password);
    await expect(page.getByRole("heading", { level: 1, name: "Two-factor authentication" })).toBeVisible();
    await page.getByLabel("Authentication code").fill(totp(secret).generate({ timestamp: Date.now() + 30_000 }));
    await page.getByRole("button", { name: "Verify" }).click();
    await expect(page).toHaveURL(/\/profile$/);
    await nav(page).getByRole("link", { name: "History" }).click();
    await expect(page.locator('[data-testid="event"][data-type="recovery_code_used"]')).toHaveCount(1);
    await expect(page.locator('[data-testid="event"][data-type="mfa_enabled"]')).toHaveCount(1);
  });

  await test.step("new recovery codes (the old ones die), then turn it off", async () => {
    await nav(page).getByRole("link", { name: "Security" }).click();
    await expect(page.getByText("Two-factor authentication is on.")).toBeVisible();
    const renew = page.getByRole("form", { name: "Get new recovery codes" });
    await renew.getByLabel("Current password").fill(person.password);
    await renew.getByLabel("Authentication code").fill(codes[1]!);
    await renew.getByRole("button", { name: "Get new codes" }).click();
    const list = page.getByTestId("recovery-codes");
    await expect(list.locator("li")).toHaveCount(10);
    const fresh = (await list.locator("li").allInnerTexts()).map((code) => code.trim());
    expect(fresh.filter((code) => codes.includes(code))).toEqual([]);
    await page.getByRole("button", { name: "I have saved these codes" }).click();

    const off = page.getByRole("form", { name: "Turn off two-factor authentication" });
    await off.getByLabel("Current password").fill(person.password);
    await off.getByLabel("Authentication code").fill(fresh[0]!);
    await off.getByRole("button", { name: "Turn off" }).click();
    await expect(page.getByRole("button", { name: "Set up two-factor authentication" })).toBeVisible();
    await expect(page.getByText("Two-factor authentication is on.")).toHaveCount(0);
  });
});
