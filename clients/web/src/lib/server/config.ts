import "server-only";

/** The API's base URL (no path), e.g. http://127.0.0.1:8000: read at request time, so one build runs anywhere. */
export function apiUrl(): string {
  const value = process.env.USERMGMT_API_URL;
  if (!value) {
    throw new Error("USERMGMT_API_URL is not set: the API's base URL, e.g. http://127.0.0.1:8000");
  }
  return value.replace(/\/+$/, "");
}

/** Where browsers reach the API (for the trip to an identity provider); USERMGMT_API_URL unless set apart. */
export function apiPublicUrl(): string {
  return (process.env.USERMGMT_API_PUBLIC_URL || apiUrl()).replace(/\/+$/, "");
}
