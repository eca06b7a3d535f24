import type { Page } from "@playwright/test";
import { expect, test } from "./support/fixtures";
import { newPerson, register } from "./support/app";

test.use({ viewport: { width: 375, height: 740 } });

async function expectNoHorizontalScroll(page: Page): Promise<void> {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  expect(scrollWidth, `the page at ${page.url()} scrolls sideways at ${innerWidth}px`).toBeLessThanOrEqual(innerWidth);
}

test("phone width: sign-in and profile fit without sideways scrolling", async ({ page }) => {
  await page.goto("/login");
  await expect(page.getByRole("button", { name: "Sign in", exact: true })).toBeVisible();
  await expectNoHorizontalScroll(page);

  const person = newPerson("phone");
  await register(page, person, { withNames: true });
  await expect(page.getByTestId("profile-username")).toHaveText(person.username);
  await expectNoHorizontalScroll(page);
  await page.getByRole("button", { name: "Edit profile" }).click();
  await expect(page.getByLabel("Full name", { exact: true })).toBeVisible();
  await expectNoHorizontalScroll(page);
});
