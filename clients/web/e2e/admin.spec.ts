import { expect, test } from "./support/fixtures";
import { alertOf, apiRegister, createAdmin, nav, newPerson, signIn, submitSignIn } from "./support/app";

test("an administrator lists and searches the users, and disables one", async ({ page, newDevice, browserErrors }) => {
  const admin = newPerson("admin");
  createAdmin(admin);
  const target = newPerson("target");
  await apiRegister(target);
  await apiRegister(newPerson("bystander"));

  await signIn(page, admin.email, admin.password);
  await nav(page).getByRole("link", { name: "Users" }).click();
  await expect(page).toHaveURL(/\/admin\/users/);
  await expect(page.getByRole("heading", { level: 1, name: "Users" })).toBeVisible();
  const rows = page.getByTestId("admin-user");
  await expect(rows.filter({ hasText: admin.email })).toHaveCount(1);
  await expect(rows.filter({ hasText: target.email })).toHaveCount(1);
  expect(await rows.count()).toBeGreaterThanOrEqual(3);

  await test.step("search by the start of the address", async () => {
    await page.getByLabel("Search").fill(target.email.slice(0, target.email.indexOf("@") - 2));
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toContainText(target.email);
    await expect(rows.first()).toContainText(target.username);
    await expect(rows.first()).toContainText("active");
  });

  await test.step("disable the account: its status changes, and it can no longer sign in", async () => {
    const row = rows.filter({ hasText: target.email });
    await row.getByRole("button", { name: "Disable" }).click();
    await expect(row).toContainText("disabled");
    await expect(row.getByRole("button", { name: "Enable" })).toBeVisible();
    await page.reload();
    await page.getByLabel("Search").fill(target.email);
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toContainText("disabled");

    const other = await newDevice();
    browserErrors.allow(/status of 403/, other.context);
    await submitSignIn(other.page, target.email, target.password);
    await expect(alertOf(other.page)).toHaveText("This account is disabled. Contact support.");
  });

  await test.step("enable it again", async () => {
    const row = rows.filter({ hasText: target.email });
    await row.getByRole("button", { name: "Enable" }).click();
    await expect(row.getByRole("button", { name: "Disable" })).toBeVisible();
    await expect(row).toContainText("active");
  });
});

test("someone without a role sees no Users link, and /admin/users says they may not", async ({ page, browserErrors }) => {
  const person = newPerson("plain");
  await apiRegister(person);
  await signIn(page, person.email, person.password);
  await expect(nav(page).getByRole("link", { name: "Users" })).toHaveCount(0);
  browserErrors.allow(/status of 403/);
  await page.goto("/admin/users");
  await expect(alertOf(page)).toContainText("You do not have permission to see this page.");
});
