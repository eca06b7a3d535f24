"use client";

import { usePathname, useRouter } from "next/navigation";
import { useCallback, useEffect, useState } from "react";
import { api, type Problem, type User } from "@/lib/api";
import { attempt } from "./request";
import { useSession, type SessionState } from "./SessionProvider";

/**
 * As useRequireSignIn, for pages that sign this browser out themselves (the current session's sign-out, the
 * account's deletion): while `hold` is true, being signed out is the page's own doing and it stays put.
 */
export function useSignedInPage(hold: boolean): SessionState {
  const { session } = useSession();
  const router = useRouter();
  const pathname = usePathname();
  useEffect(() => {
    if (!hold && session.loaded && !session.signedIn) router.replace(`/login?next=${encodeURIComponent(pathname)}`);
  }, [hold, session, router, pathname]);
  return session;
}

/** The signed-in user (GET /users/me), loaded once the session is known to be signed in. */
export function useCurrentUser(signedIn: boolean): { user: User | null; problem: Problem | null; reload: () => Promise<void> } {
  const [user, setUser] = useState<User | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const reload = useCallback(async () => {
    const answer = await attempt(api.GET("/api/v1/users/me"));
    if (answer.data) {
      setUser(answer.data);
      setProblem(null);
    } else {
      setProblem(answer.problem);
    }
  }, []);
  useEffect(() => {
    if (signedIn) void reload();
  }, [signedIn, reload]);
  return { user, problem, reload };
}
