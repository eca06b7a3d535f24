import "server-only";
import type { NextRequest } from "next/server";
import { apiUrl } from "./config";

/** Request headers passed on to the API, so that it sees the person's browser, not this server. */
const FORWARDED = ["user-agent", "accept-language", "x-forwarded-for", "x-request-id"];

export type Upstream = {
  status: number;
  headers: Headers;
  body: ArrayBuffer;
};

/**
 * One call to the API from this server. The browser's User-Agent and X-Forwarded-For go along: list this server
 * in the API's USERMGMT_TRUSTED_PROXIES so that rate limits and the security history name the person's address.
 */
export async function callApi(
  request: NextRequest,
  method: string,
  path: string,
  options: { body?: ArrayBuffer | string; contentType?: string | null; accessToken?: string } = {},
): Promise<Upstream> {
  const headers = new Headers({ Accept: "application/json, application/problem+json" });
  for (const name of FORWARDED) {
    const value = request.headers.get(name);
    if (value) headers.set(name, value);
  }
  if (options.contentType) headers.set("Content-Type", options.contentType);
  if (options.accessToken) headers.set("Authorization", `Bearer ${options.accessToken}`);
  const response = await fetch(`${apiUrl()}${path}`, {
    method,
    headers,
    body: options.body,
    cache: "no-store",
    redirect: "manual",
  });
  return { status: response.status, headers: response.headers, body: await response.arrayBuffer() };
}

export function json<T>(upstream: Upstream): T {
  return JSON.parse(new TextDecoder().decode(upstream.body)) as T;
}

export function problemCode(upstream: Upstream): string | undefined {
  if (!upstream.headers.get("content-type")?.includes("json")) return undefined;
  try {
    return json<{ code?: string }>(upstream).code;
  } catch {
    return undefined;
  }
}
