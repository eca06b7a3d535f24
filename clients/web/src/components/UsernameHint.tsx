/** A hidden username field for a form that asks for the current password: password managers then know the account
 * (and browsers stop warning about a password form without a username). */
export function UsernameHint({ value }: { value: string }) {
  return <input type="text" name="username" autoComplete="username" value={value} readOnly hidden />;
}
