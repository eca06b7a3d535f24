import path from "node:path";
import type { Page } from "@playwright/test";
import { expect, test } from "./support/fixtures";
import { WEB_DIR } from "./support/env";
import { apiRegister, createAdmin, nav, newPerson, register, signIn, signOut } from "./support/app";

/**
 * The docs' screenshots (docs/screenshots/*.png), not part of the suite: `npm run screenshots`.
 */
const DIR = path.join(WEB_DIR, "docs", "screenshots");

async function shoot(page: Page, name: string): Promise<void> {
  await page.evaluate(() => document.fonts.ready);
  await page.screenshot({ path: path.join(DIR, `${name}.png`), fullPage: true, animations: "disabled", caret: "hide" });
}

test("screenshots of the main pages @screenshots", async ({ page }) => {
  test.setTimeout(120_000);
  // A fresh database per run (the global setup), so the docs can show friendly names.
  const ada = { ...newPerson("ada"), email: "ada@example.com", username: "ada", fullName: "Ada Lovelace" };

  await page.goto("/login");
  await expect(page.getByRole("button", { name: "Sign in", exact: true })).toBeVisible();
  await expect(page.getByRole("link", { name: "Continue with Google" })).toBeVisible(); // the providers load after
  await shoot(page, "login");

  await page.goto("/register");
  await expect(page.getByRole("button", { name: "Create account" })).toBeVisible();
  await shoot(page, "register");

  await register(page, ada, { withNames: true });
  await expect(page.getByTestId("profile-full-name")).toHaveText(ada.fullName);
  await shoot(page, "profile");

  await nav(page).getByRole("link", { name: "Security" }).click();
  await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
  await page.getByLabel("Current password").fill(ada.password);
  await page.getByRole("button", { name: "Continue" }).click();
  await expect(page.getByTestId("totp-qr")).toBeVisible();
  await expect(page.getByTestId("totp-secret")).not.toBeEmpty();
  await expect(page.getByRole("button", { name: "Link Google" })).toBeVisible();
  await shoot(page, "security");

  const phone = await page.context().browser()!.newContext({
    baseURL: test.info().project.use.baseURL,
    userAgent:
      "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
  });
  await signIn(await phone.newPage(), ada.username, ada.password);
  await phone.close();
  await nav(page).getByRole("link", { name: "Sessions" }).click();
  await expect(page.getByTestId("session")).toHaveCount(2);
  await shoot(page, "sessions");

  await nav(page).getByRole("link", { name: "History" }).click();
  await expect(page.getByTestId("event").first()).toBeVisible();
  await shoot(page, "history");

  await nav(page).getByRole("link", { name: "Security" }).click();
  await page.getByRole("link", { name: "Delete account" }).click();
  await page.getByLabel("Current password").fill(ada.password);
  await page.getByLabel("I understand this cannot be undone").check();
  await page.getByRole("button", { name: "Delete my account" }).click();
  await expect(page.getByTestId("receipt")).toBeVisible();
  await shoot(page, "delete-receipt");

  const admin = { ...newPerson("admin"), email: "admin@example.com" };
  createAdmin(admin);
  for (const [username, fullName] of [
    ["grace", "Grace Hopper"],
    ["alan", "Alan Turing"],
    ["edsger", "Edsger Dijkstra"],
    ["barbara", "Barbara Liskov"],
  ] as const) {
    await apiRegister({ ...newPerson(username), email: `${username}@example.com`, username, fullName });
  }
  await signIn(page, admin.email, admin.password);
  await nav(page).getByRole("link", { name: "Users" }).click();
  await expect(page.getByTestId("admin-user").first()).toBeVisible();
  await shoot(page, "admin-users");
  await signOut(page);
});
