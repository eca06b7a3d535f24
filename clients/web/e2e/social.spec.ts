import { expect, test } from "./support/fixtures";
import { alertOf, apiRegister, nav, newPerson, register, signIn } from "./support/app";
import { addProviderAccount, newSub, throughProvider } from "./support/provider";
import { expectNoTokenReadable, tokenCookies } from "./support/tokens";

/**
 * "Continue with Google" and "Link Google", Google being the test OpenID Provider of the global setup: the browser
 * really goes client → API → provider's pages → API → client, and the client trades the login code on its server.
 */

test("a new person continues with Google: a new account, signed in, and no token readable by the page", async ({ page }) => {
  const person = newPerson("google");
  const sub = newSub("new");
  await addProviderAccount({ sub, email: person.email, email_verified: true, name: person.fullName });

  await page.goto("/login");
  await throughProvider(page, sub, () => page.getByRole("link", { name: "Continue with Google" }).click());
  await expect(page).toHaveURL(/\/profile$/);
  await expect(page.getByTestId("profile-email")).toContainText(person.email);
  await expect(page.getByTestId("profile-email")).not.toContainText("not verified"); // Google vouched for it
  const tokens = await tokenCookies(page);
  expect(tokens, "the token pair, in the client's cookies").toHaveLength(2);
  await expectNoTokenReadable(page, tokens.map((cookie) => cookie.value));

  await nav(page).getByRole("link", { name: "Security" }).click();
  const providers = page.getByRole("region", { name: "Sign-in providers" });
  await expect(providers.getByTestId("identity")).toHaveCount(1);
  await expect(providers.getByTestId("identity")).toHaveAttribute("data-provider", "google");
  await expect(providers.getByTestId("identity")).toContainText(`Google · ${person.email}`);
  await expect(page.getByText("Your account has no password: you sign in with a provider.")).toBeVisible();
});

test("Google with the address of an unverified password account: account_exists, and the account is not joined", async ({ page }) => {
  const person = newPerson("unjoined");
  await apiRegister(person); // its address never verified
  const sub = newSub("claim");
  await addProviderAccount({ sub, email: person.email, email_verified: true });

  await page.goto("/login");
  await throughProvider(page, sub, () => page.getByRole("link", { name: "Continue with Google" }).click());
  await expect(page).toHaveURL(/\/login\?error=account_exists$/);
  await expect(alertOf(page)).toHaveText(
    "An account with this email address exists already. Sign in with its password, then link the provider on the Security page.",
  );
  expect(await tokenCookies(page), "not signed in").toEqual([]);

  await signIn(page, person.email, person.password);
  await nav(page).getByRole("link", { name: "Security" }).click();
  const providers = page.getByRole("region", { name: "Sign-in providers" });
  await expect(providers.getByText("No provider is linked to your account.")).toBeVisible();
  await expect(providers.getByTestId("identity")).toHaveCount(0);
});

test("link Google from the security page, then unlink it", async ({ page }) => {
  const person = newPerson("linker");
  const other = newPerson("linked"); // the provider account has an address of its own
  const sub = newSub("link");
  await addProviderAccount({ sub, email: other.email, email_verified: true });
  await register(page, person);

  await nav(page).getByRole("link", { name: "Security" }).click();
  const providers = page.getByRole("region", { name: "Sign-in providers" });
  await expect(providers.getByText("No provider is linked to your account.")).toBeVisible();
  await throughProvider(page, sub, () => providers.getByRole("button", { name: "Link Google" }).click());
  await expect(providers.getByRole("status")).toHaveText("Your Google account is linked: you can sign in with it.");
  await expect(page).toHaveURL(/\/security$/); // ?linked= read once: a reload does not announce it again
  const identity = providers.getByTestId("identity");
  await expect(identity).toHaveCount(1);
  await expect(identity).toContainText(`Google · ${other.email}`);
  await expect(providers.getByRole("button", { name: "Link Google" })).toHaveCount(0);

  await identity.getByRole("button", { name: "Unlink" }).click();
  await expect(providers.getByRole("status")).toHaveText("Google is unlinked: it no longer signs you in.");
  await expect(identity).toHaveCount(0);
  await expect(providers.getByText("No provider is linked to your account.")).toBeVisible();
  await expect(providers.getByRole("button", { name: "Link Google" })).toBeVisible();
});

test("linking a Google account another account already has: back on the security page, signed in, told why", async ({ page, newDevice }) => {
  const owner = newPerson("owner");
  const sub = newSub("taken");
  await addProviderAccount({ sub, email: owner.email, email_verified: true });
  const { page: first } = await newDevice();
  await first.goto("/login");
  await throughProvider(first, sub, () => first.getByRole("link", { name: "Continue with Google" }).click());
  await expect(first).toHaveURL(/\/profile$/); // that provider account now belongs to the owner's new account

  const person = newPerson("latecomer");
  await register(page, person);
  await nav(page).getByRole("link", { name: "Security" }).click();
  const providers = page.getByRole("region", { name: "Sign-in providers" });
  await throughProvider(page, sub, () => providers.getByRole("button", { name: "Link Google" }).click());
  await expect(page).toHaveURL(/\/security$/);
  await expect(providers.getByRole("alert")).toHaveText("That provider account is linked to another account already.");
  await expect(providers.getByTestId("identity")).toHaveCount(0);
  await expect(nav(page).getByRole("button", { name: "Sign out" })).toBeVisible(); // still signed in
});
