import fs from "node:fs";
import { expect, test } from "./support/fixtures";
import { nav, newPerson, register } from "./support/app";

test("download my data: a JSON file of what the service holds", async ({ page }) => {
  const person = newPerson("export");
  await register(page, person);
  await nav(page).getByRole("link", { name: "Security" }).click();
  await expect(page.getByRole("heading", { level: 2, name: "Your data" })).toBeVisible();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download my data" }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/\.json$/);
  const text = fs.readFileSync(await download.path(), "utf8");
  const data = JSON.parse(text) as Record<string, unknown>;
  expect(text).toContain(person.email);
  expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\./); // no token in it
  expect(Object.keys(data).length).toBeGreaterThan(1);
});
