// Calls to the dashboard's session endpoints and to the /v1 API, authenticated by the session cookie.
// The API key is sent once, at sign-in, in a request body; it is never kept by the page.

/** An API error: the HTTP status and the API's JSON error code and message. */
export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const session = { project: null, csrf: null, bulkIdsMax: 100 };

// The server names, in this header, the partitions a listing left out because their Redis master did not
// answer (Redis Cluster, one master down): the page then shows what the others hold, and says so.
const UNANSWERED_HEADER = "Baton-Unanswered-Partitions";
// API path (no query) -> the partitions its latest answer left out
const partial = new Map();

function notePartial(path, resp) {
  const key = path.split("?")[0];
  const missing = resp.headers.get(UNANSWERED_HEADER);
  if (missing) partial.set(key, missing);
  else if (!partial.delete(key)) return;
  window.dispatchEvent(new CustomEvent("baton:partial", { detail: unanswered() }));
}

/** The partitions the latest answers of the current page left out (numbers, ascending). */
export function unanswered() {
  const all = new Set([...partial.values()].flatMap((v) => v.split(",").map(Number)));
  return [...all].sort((a, b) => a - b);
}

/** Forget what earlier pages' answers left out (a new page starts whole). */
export function forgetPartial() {
  if (!partial.size) return;
  partial.clear();
  window.dispatchEvent(new CustomEvent("baton:partial", { detail: [] }));
}

/** The signed-in project, or null. */
export function project() {
  return session.project;
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // every state-changing request carries the session's CSRF token (the server refuses it otherwise)
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = (resp.headers.get("Content-Type") || "").includes("application/json") ? await resp.json() : null;
  if (resp.ok && method === "GET" && path.startsWith("/v1/")) notePartial(path, resp);
  if (!resp.ok) {
    if (resp.status === 401 && path.startsWith("/v1/")) {
      session.project = session.csrf = null;
      window.dispatchEvent(new Event("baton:signedout"));
      // (the API's words are for a client sending a key; this page's session ended)
      throw new ApiFailure(401, data?.code || "unauthorized", "Your session ended: sign in again.");
    }
    throw new ApiFailure(resp.status, data?.code || "http_error", data?.error || `HTTP ${resp.status}`);
  }
  return data;
}

/** The current session (true when signed in). */
export async function loadSession() {
  const s = await call("GET", "/ui/session");
  if (!s.signed_in) return false;
  remember(s);
  return true;
}

/** Sign in with an API key; throws ApiFailure when the key is refused. */
export async function signIn(apiKey) {
  remember(await call("POST", "/ui/session", { api_key: apiKey }));
}

function remember(s) {
  session.project = s.project;
  session.csrf = s.csrf_token;
  session.bulkIdsMax = s.bulk_ids_max || session.bulkIdsMax;
}

/** The most run ids one bulk call may name (the server's limit, told at sign-in). */
export function bulkIdsMax() {
  return session.bulkIdsMax;
}

/** Sign out: the server deletes the session and the cookie. */
export async function signOut() {
  try {
    await call("DELETE", "/ui/session");
  } finally {
    session.project = session.csrf = null;
  }
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** GET a /v1 path (params become the query string). */
export function get(path, params) {
  return call("GET", `/v1${path}${query(params)}`);
}

/** POST to a /v1 path. */
export function post(path, body) {
  return call("POST", `/v1${path}`, body === undefined ? {} : body);
}

/** DELETE a /v1 path. */
export function del(path) {
  return call("DELETE", `/v1${path}`);
}

/** The path of one run (ids may contain ':' and '.'). */
export function runPath(id) {
  return `/runs/${encodeURIComponent(id)}`;
}
