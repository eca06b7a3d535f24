import { expect, test } from "./support/fixtures";
import { alertOf, failSignIns, nav, newPassword, newPerson, outliveAccessToken, register, signIn, submitSignIn } from "./support/app";

/**
 * One account from registration to deletion, as a person uses it: the profile, the session surviving the access
 * token's expiry (also in two tabs refreshing at the same moment), a second device signed out by a password
 * change, the sessions and the security history, and the deletion.
 */
test("the whole life of an account", async ({ page, context, newDevice, browserErrors }) => {
  test.setTimeout(120_000);
  const person = newPerson("life");
  let password = person.password;

  await test.step("register and land on the profile", async () => {
    await register(page, person);
    await expect(page.getByRole("heading", { level: 1, name: "Profile" })).toBeVisible();
    await expect(page.getByTestId("profile-email")).toContainText("not verified");
  });

  await test.step("edit the username and full name", async () => {
    await page.getByRole("button", { name: "Edit profile" }).click();
    await page.getByLabel("Username", { exact: true }).fill(person.username);
    await page.getByLabel("Full name", { exact: true }).fill(person.fullName);
    await page.getByRole("button", { name: "Save" }).click();
    await expect(page.getByRole("status").filter({ hasText: "Your profile is saved." })).toBeVisible();
    await expect(page.getByTestId("profile-username")).toHaveText(person.username);
    await expect(page.getByTestId("profile-full-name")).toHaveText(person.fullName);
  });

  await test.step("reload: still signed in, the change kept", async () => {
    await page.reload();
    await expect(page).toHaveURL(/\/profile/);
    await expect(page.getByTestId("profile-username")).toHaveText(person.username);
    await expect(page.getByTestId("profile-full-name")).toHaveText(person.fullName);
  });

  await test.step("past the access token's lifetime: keep working", async () => {
    await outliveAccessToken(page);
    await page.getByRole("button", { name: "Edit profile" }).click();
    await page.getByLabel("Full name", { exact: true }).fill(`${person.fullName} Jr.`);
    await page.getByRole("button", { name: "Save" }).click();
    await expect(page.getByRole("status").filter({ hasText: "Your profile is saved." })).toBeVisible();
    await expect(page.getByTestId("profile-full-name")).toHaveText(`${person.fullName} Jr.`);
    await nav(page).getByRole("link", { name: "Sessions" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Active sessions" })).toBeVisible();
    await expect(page.getByTestId("session").filter({ hasText: "This device" })).toHaveCount(1);
  });

  const tab = await context.newPage();
  await test.step("two tabs reload at once after the token expired: one refresh, the session lives", async () => {
    await page.goto("/profile");
    await tab.goto("/history");
    await expect(page.getByTestId("profile-email")).toBeVisible();
    await expect(tab.getByRole("heading", { level: 1, name: "Security history" })).toBeVisible();
    await outliveAccessToken(page);
    await Promise.all([page.reload(), tab.reload()]);
    await expect(page.getByTestId("profile-username")).toHaveText(person.username);
    await expect(tab.getByTestId("event").first()).toBeVisible();
    await expect(page).toHaveURL(/\/profile$/);
    await expect(tab).toHaveURL(/\/history$/);
    // Had both tabs sent the same refresh token to the API, it would have ended the session as stolen.
    await expect(tab.locator('[data-testid="event"][data-type="refresh_reuse_detected"]')).toHaveCount(0);
    await nav(page).getByRole("link", { name: "Sessions" }).click();
    await expect(page.getByTestId("session").filter({ hasText: "This device" })).toHaveCount(1);
    await nav(tab).getByRole("link", { name: "Profile" }).click();
    await expect(tab.getByTestId("profile-username")).toHaveText(person.username);
    await tab.close();
  });

  const phone = await newDevice();
  await test.step("someone guesses the password; then a second device signs in (by username)", async () => {
    // Enough failed attempts that the history has more than one page (20 events).
    await failSignIns(person.email, 15);
    browserErrors.allow(/status of 401/, phone.context);
    await submitSignIn(phone.page, person.username, "not the password");
    await expect(alertOf(phone.page)).toHaveText("That email, username or password is not right.");
    await signIn(phone.page, person.username, password);
    await page.reload();
    await expect(page.getByTestId("session")).toHaveCount(2);
    await expect(page.getByTestId("session").filter({ hasText: "This device" })).toHaveCount(1);
  });

  await test.step("change the password on the first device", async () => {
    await nav(page).getByRole("link", { name: "Security" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Security" })).toBeVisible();
    await page.getByRole("link", { name: "Change password" }).click();
    await expect(page).toHaveURL(/\/password$/);
    await expect(page.getByRole("heading", { level: 1, name: "Change password" })).toBeVisible();
    const next = newPassword();
    await page.getByLabel("Current password").fill(password);
    await page.getByLabel("New password").fill(next);
    await page.getByRole("button", { name: "Change password" }).click();
    await expect(
      page.getByRole("status").filter({ hasText: "Your password is changed. Your other sessions are signed out." }),
    ).toBeVisible();
    password = next;
  });

  await test.step("the second device's session has ended: a reload lands on /login", async () => {
    // Its requests are refused with 401 from now on, which the browser logs as a failed resource load (allowed above).
    await phone.page.reload();
    await expect(phone.page).toHaveURL(/\/login/);
    await expect(phone.page.getByRole("heading", { level: 1, name: "Sign in" })).toBeVisible();
    await phone.context.close();
  });

  await test.step("the sessions page shows only this device", async () => {
    await nav(page).getByRole("link", { name: "Sessions" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Active sessions" })).toBeVisible();
    await expect(page.getByTestId("session")).toHaveCount(1);
    await expect(page.getByTestId("session")).toContainText("This device");
  });

  await test.step("the security history", async () => {
    await nav(page).getByRole("link", { name: "History" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Security history" })).toBeVisible();
    const events = page.getByTestId("event");
    await expect(events.first()).toBeVisible();
    // Newest first: the password change is above the sign-ins (only token renewals may have come since).
    await expect(page.locator('[data-testid="event"][data-type="password_changed"]')).toContainText("Password changed");
    const types = await events.evaluateAll((items) => items.map((item) => item.getAttribute("data-type")));
    expect(types.indexOf("password_changed")).toBeLessThan(types.indexOf("login_succeeded"));
    await expect(page.locator('[data-testid="event"][data-type="login_succeeded"]').first()).toContainText("Signed in");
    await expect(page.locator('[data-testid="event"][data-type="refresh_reuse_detected"]')).toHaveCount(0);
    await expect(page.locator('[data-testid="event"][data-type="login_failed"]').first()).toContainText("Failed sign-in");
    // Over 25 events by now, more than a page (the API's default is 20): the oldest come with "Show older", down
    // to the account's creation.
    const older = page.getByRole("button", { name: "Show older" });
    await expect(older).toBeVisible();
    while (await older.isVisible()) {
      const shown = await events.count();
      await older.click();
      await expect.poll(() => events.count()).toBeGreaterThan(shown);
    }
    await expect(events.last()).toHaveAttribute("data-type", "registered");
    await expect(events.last()).toContainText("Account created");
    expect(await events.count()).toBeGreaterThan(20);
  });

  await test.step("delete the account: the receipt", async () => {
    await nav(page).getByRole("link", { name: "Security" }).click();
    await page.getByRole("link", { name: "Delete account" }).click();
    await expect(page).toHaveURL(/\/delete$/);
    await expect(page.getByRole("heading", { level: 1, name: "Delete account" })).toBeVisible();
    await page.getByLabel("Current password").fill(password);
    await page.getByLabel("I understand this cannot be undone").check();
    await page.getByRole("button", { name: "Delete my account" }).click();
    await expect(page.getByRole("heading", { level: 2, name: "Your account is deleted" })).toBeVisible();
    const receipt = page.getByTestId("receipt");
    await expect(receipt).toBeVisible();
    await expect(receipt).toContainText(/sessions/i);
    await expect(receipt).toContainText(/security/i);
    await expect(nav(page).getByRole("link", { name: "Sign in" })).toBeVisible();
  });

  await test.step("signing in again fails: invalid credentials", async () => {
    browserErrors.allow(/status of 401/);
    await page.goto("/login");
    await submitSignIn(page, person.email, password);
    await expect(alertOf(page)).toHaveText("That email, username or password is not right.");
    await expect(page).toHaveURL(/\/login$/);
  });
});
