import { expect, test } from "./support/fixtures";
import { nav, newPerson, register, signIn, submitSignIn } from "./support/app";

test("signing out: /login?signed_out=1 says so; a signed-in page then asks to sign in and comes back", async ({ page }) => {
  const person = newPerson("signout");
  await register(page, person);

  await nav(page).getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login\?signed_out=1$/);
  await expect(page.getByText("You are signed out.")).toBeVisible();
  await expect(nav(page).getByRole("link", { name: "Sign in" })).toBeVisible();
  await expect(nav(page).getByRole("link", { name: "Create account" })).toBeVisible();

  await page.goto("/sessions");
  await expect(page).toHaveURL(/\/login\?next=%2Fsessions$/);
  await submitSignIn(page, person.email, person.password);
  await expect(page).toHaveURL(/\/sessions$/);
  await expect(page.getByRole("heading", { level: 1, name: "Active sessions" })).toBeVisible();
  await expect(page.getByTestId("session").filter({ hasText: "This device" })).toHaveCount(1);
});

const UA = {
  phone: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
  tablet: "Mozilla/5.0 (Linux; Android 15; Pixel Tablet) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
};

test("the sessions page signs out one device, then every other one, then this one", async ({ page, newDevice, browserErrors }) => {
  const person = newPerson("devices");
  await register(page, person);
  const phone = await newDevice({ userAgent: UA.phone });
  const tablet = await newDevice({ userAgent: UA.tablet });
  for (const device of [phone, tablet]) {
    browserErrors.allow(/status of 401/, device.context); // once signed out from elsewhere, its requests get 401
    await signIn(device.page, person.email, person.password);
  }

  await nav(page).getByRole("link", { name: "Sessions" }).click();
  const rows = page.getByTestId("session");
  await expect(rows).toHaveCount(3);
  await expect(rows.filter({ hasText: "This device" })).toHaveCount(1);
  await expect(rows.filter({ hasText: "127.0.0.1" })).toHaveCount(3);

  await rows.filter({ hasText: "iPhone" }).getByRole("button", { name: "Sign out this device" }).click();
  await expect(rows).toHaveCount(2);
  await phone.page.reload();
  await expect(phone.page).toHaveURL(/\/login/);

  await page.getByRole("button", { name: "Sign out everywhere else" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Every other session is signed out." })).toBeVisible();
  await expect(rows).toHaveCount(1);
  await expect(rows).toContainText("This device");
  await tablet.page.reload();
  await expect(tablet.page).toHaveURL(/\/login/);

  await rows.getByRole("button", { name: "Sign out this device" }).click();
  await expect(page).toHaveURL(/\/login\?signed_out=1$/);
  await expect(page.getByText("You are signed out.")).toBeVisible();
});
