import { expect, test } from "./support/fixtures";
import { newPassword, newPerson, register, signIn, signOut } from "./support/app";
import { linkIn, waitForMail } from "./support/mail";

test("the verification link from the registration email verifies the address", async ({ page }) => {
  const person = newPerson("verify");
  const since = Date.now();
  await register(page, person);
  await expect(page.getByTestId("profile-email").getByText("not verified", { exact: true })).toBeVisible();

  const mail = await waitForMail({ to: person.email, template: "verify_email", since });
  const link = linkIn(mail, "/verify-email");
  await page.goto(link);
  await expect(page.getByRole("heading", { level: 1, name: "Verify your email" })).toBeVisible();
  await expect(page.getByRole("status").filter({ hasText: "Your email address is verified." })).toBeVisible();

  await page.goto("/profile");
  await expect(page.getByTestId("profile-email")).toContainText(person.email);
  await expect(page.getByTestId("profile-email").getByText("verified", { exact: true })).toBeVisible();
  await expect(page.getByRole("button", { name: "Send a new verification link" })).toHaveCount(0);
});

test("forgot password: the reset link sets a new password, which signs in", async ({ page }) => {
  const person = newPerson("reset");
  await register(page, person);
  await signOut(page);

  await page.getByRole("link", { name: "Forgot your password?" }).click();
  await expect(page).toHaveURL(/\/forgot-password$/);
  await expect(page.getByRole("heading", { level: 1, name: "Reset your password" })).toBeVisible();
  const since = Date.now();
  await page.getByLabel("Email", { exact: true }).fill(person.email);
  await page.getByRole("button", { name: "Send reset link" }).click();
  await expect(
    page.getByRole("status").filter({ hasText: "If an account uses this address, a reset link is on its way." }),
  ).toBeVisible();

  const mail = await waitForMail({ to: person.email, template: "reset_password", since });
  await page.goto(linkIn(mail, "/reset-password"));
  await expect(page.getByRole("heading", { level: 1, name: "Choose a new password" })).toBeVisible();
  const password = newPassword();
  await page.getByLabel("New password").fill(password);
  await page.getByRole("button", { name: "Set password" }).click();
  await expect(page).toHaveURL(/\/login\?reset=1$/);
  await expect(page.getByText("Your password is set. Sign in with it.")).toBeVisible();

  await signIn(page, person.email, password);
  // A reset link proves the address too.
  await expect(page.getByTestId("profile-email").getByText("verified", { exact: true })).toBeVisible();
});

test("changing the email address: the link sent to the new address confirms it", async ({ page }) => {
  const person = newPerson("change");
  const moved = newPerson("moved").email;
  await register(page, person);

  const since = Date.now();
  await page.getByLabel("New email address").fill(moved);
  await page.getByLabel("Current password").fill(person.password);
  await page.getByRole("button", { name: "Send confirmation link" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Check the new mailbox:" })).toBeVisible();
  await expect(page.getByText(`Waiting for confirmation from ${moved}.`)).toBeVisible();

  const mail = await waitForMail({ to: moved, template: "confirm_email_change", since });
  await page.goto(linkIn(mail, "/confirm-email"));
  await expect(page.getByRole("heading", { level: 1, name: "Confirm your new email address" })).toBeVisible();
  await page.getByRole("button", { name: "Confirm new address" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Your email address is changed." })).toBeVisible();

  await page.goto("/profile");
  await expect(page.getByTestId("profile-email")).toContainText(moved);
  await expect(page.getByTestId("profile-email").getByText("verified", { exact: true })).toBeVisible();
});
