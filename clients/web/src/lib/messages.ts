import type { Problem } from "./api";

/**
 * What a person reads for a problem, by its stable `code`. The API's `detail` is safe to show and is the
 * fallback; these are the codes where the page has something more useful to say.
 */
const MESSAGES: Record<string, string> = {
  invalid_credentials: "That email, username or password is not right.",
  rate_limited: "Too many attempts. Wait a little and try again.",
  account_disabled: "This account is disabled. Contact support.",
  email_taken: "An account with this email address already exists.",
  username_taken: "This username is taken.",
  invalid_password: "Your current password is not right.",
  invalid_mfa_code: "That code is not right. Try the newest code of your app, or a recovery code.",
  invalid_mfa_token: "This sign-in took too long. Sign in again.",
  invalid_email_token: "This link is not valid any more: it expired, was used already, or was replaced by a newer one.",
  invalid_refresh_token: "Your session has ended. Sign in again.",
  not_signed_in: "Sign in first.",
  origin_mismatch: "This request did not come from this site.",
  reauthentication_required: "For this, sign in again first (it has been over 10 minutes).",
  access_denied: "The sign-in with the provider was cancelled.",
  account_exists:
    "An account with this email address exists already. Sign in with its password, then link the provider on the Security page.",
  email_required: "The provider did not share an email address, which an account needs.",
  identity_in_use: "That provider account is linked to another account already.",
  provider_error: "The identity provider could not be reached. Try again later.",
  invalid_login_code: "That sign-in did not finish in time. Try again.",
  network_error: "The server could not be reached. Check your connection and try again.",
  no_password: "Your account has no password yet. Set one through the reset email (Forgot your password?).",
  recent_sign_in_required: "For this, enter your password or sign in again (it has been over 10 minutes).",
  mfa_already_enabled: "Two-factor authentication is on already.",
  mfa_not_enabled: "Two-factor authentication is not on for this account.",
  no_pending_enrolment: "This set-up expired or was replaced. Start the set-up again.",
  last_login_method:
    "This is the only way into your account. Set a password (through the reset email) or link another provider first.",
  identity_not_found: "That sign-in provider is not linked to your account any more.",
  unknown_provider: "That sign-in provider is not available.",
  session_not_found: "That session has ended already.",
  last_admin: "This is the last active administrator. Give the admin role to another account first.",
  user_not_found: "That user does not exist any more.",
  insufficient_permission: "You do not have permission to do this.",
  email_already_verified: "Your email address is verified already.",
  concurrent_update: "Your account was changed at the same moment elsewhere. Try again.",
  account_pending_deletion: "This account is scheduled for deletion. Use the restore link we emailed to keep it.",
  service_unavailable: "The service is busy or down for a moment. Try again in a few seconds.",
  invalid_cursor: "The list changed meanwhile. Start again from the top.",
  unexpected_response: "Something went wrong. Try again.",
  internal_error: "Something went wrong on our side. Try again later.",
};

export function messageFor(problem: Problem): string {
  return MESSAGES[problem.code] ?? problem.detail;
}

export function messageForCode(code: string): string {
  return MESSAGES[code] ?? "Something went wrong. Try again.";
}
