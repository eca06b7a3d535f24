"use client";

import Link from "next/link";
import { bff } from "@/lib/api";
import { useSession } from "./SessionProvider";

export function Nav() {
  const { session } = useSession();
  async function signOut() {
    await bff("/session", "DELETE");
    // A full load: nothing of the signed-in pages' state survives, and no page's own redirect can race this one.
    window.location.assign("/login?signed_out=1");
  }
  return (
    <header className="topbar">
      <Link href="/" className="brand">
        usermgmt
      </Link>
      <nav aria-label="Main">
        {session.signedIn ? (
          <ul>
            <li><Link href="/profile">Profile</Link></li>
            <li><Link href="/security">Security</Link></li>
            <li><Link href="/sessions">Sessions</Link></li>
            <li><Link href="/history">History</Link></li>
            {session.roles.length > 0 ? <li><Link href="/admin/users">Users</Link></li> : null}
            <li>
              <button type="button" className="link" onClick={signOut}>
                Sign out
              </button>
            </li>
          </ul>
        ) : session.loaded ? (
          <ul>
            <li><Link href="/login">Sign in</Link></li>
            <li><Link href="/register">Create account</Link></li>
          </ul>
        ) : null}
      </nav>
    </header>
  );
}
