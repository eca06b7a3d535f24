import { useState, type FormEvent } from "react";
import { asProblem, type Problem } from "@/lib/api";

type Answer<D> = { data?: D; error?: unknown; response: Response };

export type Outcome<D> = { ok: boolean; data: D | undefined; problem: Problem | null; response: Response | null };

/**
 * An `api.GET/POST/...` call as one shape: the data, or the problem (the API's problem+json, or one made up for a
 * non-JSON answer); a network failure, where openapi-fetch throws, becomes the `network_error` problem.
 */
export async function attempt<D>(call: Promise<Answer<D>>): Promise<Outcome<D>> {
  try {
    const { data, error, response } = await call;
    if (response.ok) return { ok: true, data, problem: null, response };
    return { ok: false, data: undefined, problem: asProblem(error, response.status), response };
  } catch {
    return { ok: false, data: undefined, problem: asProblem(null), response: null };
  }
}

/** A form that sends one request (an email link's token, say): busy while it runs, then done or its problem. */
export function useOneShot<D>(call: () => Promise<Answer<D>>) {
  const [problem, setProblem] = useState<Problem | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setBusy(true);
    const answer = await attempt(call());
    setBusy(false);
    setDone(answer.ok);
    setProblem(answer.problem);
  }
  return { problem, done, busy, submit };
}
