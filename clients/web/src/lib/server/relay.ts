import "server-only";
import { NextResponse } from "next/server";
import type { Upstream } from "./upstream";

/** Response headers of the API that a page may need (the body's type, rate limits, the download's file name). */
const PASSED = [
  "content-type",
  "content-disposition",
  "retry-after",
  "ratelimit-limit",
  "ratelimit-remaining",
  "ratelimit-reset",
  "x-request-id",
];

/** The API's answer, as it is, minus anything the browser must not get (its cookies, its Location). */
export function relay(upstream: Upstream, body: BodyInit | null = upstream.body): NextResponse {
  const headers = new Headers({ "Cache-Control": "no-store" });
  for (const name of PASSED) {
    const value = upstream.headers.get(name);
    if (value) headers.set(name, value);
  }
  const empty = upstream.status === 204 || upstream.status === 304;
  return new NextResponse(empty ? null : body, { status: upstream.status, headers });
}
