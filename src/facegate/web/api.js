// The public HTTP API with the signed-in key (X-API-Key header). The key lives in sessionStorage for this tab
// only (the same entry the /docs page uses), never in a URL.
import { errorText } from "./messages.js";

const STORAGE_KEY = "facegate-api-key";

export class ApiError extends Error {
  constructor(status, code, message, extra = {}) {
    super(message);
    this.status = status; // 0: the server could not be reached
    this.code = code;
    this.retryAfter = extra.retryAfter ?? null;
    this.body = extra.body ?? null;
  }
  // Plain words for the person using the page.
  get text() {
    return errorText(this);
  }
}

export function storedKey() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(STORAGE_KEY, key);
  else sessionStorage.removeItem(STORAGE_KEY);
}

// Called on any 401 (a revoked or expired key): app.js signs out and shows why.
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "" && value !== false) q.set(name, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function send(method, path, { params, json, form, key, signal, lastEventId } = {}) {
  const headers = { "X-API-Key": key ?? storedKey() ?? "" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // FormData: the browser sets the multipart boundary
  }
  let response;
  try {
    response = await fetch(path + query(params), { method, headers, body, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "server_unreachable", "The server could not be reached.");
  }
  if (response.ok) return response;
  let code = `http_${response.status}`;
  let message = response.statusText;
  let payload = null;
  try {
    payload = await response.json();
    if (payload && payload.error) ({ code, message } = payload.error);
  } catch {
    // a proxy's HTML error page: keep the status
  }
  const retry = Number(response.headers.get("Retry-After"));
  const error = new ApiError(response.status, code, message, {
    retryAfter: Number.isFinite(retry) && retry > 0 ? retry : null,
    body: payload,
  });
  if (response.status === 401 && key === undefined) onUnauthorized(error);
  throw error;
}

export const api = {
  async get(path, params, options = {}) {
    return (await send("GET", path, { params, ...options })).json();
  },
  async post(path, json) {
    const response = await send("POST", path, { json });
    return response.status === 204 ? null : response.json();
  },
  async postForm(path, form) {
    const response = await send("POST", path, { form });
    return response.status === 204 ? null : response.json();
  },
  async patch(path, json) {
    return (await send("PATCH", path, { json })).json();
  },
  async del(path) {
    await send("DELETE", path);
  },
  // Who a key is (any key may ask): {id, name, scopes, ...}. Used to sign in, before the key is stored.
  async me(key) {
    return (await send("GET", "/api/v1/keys/me", { key })).json();
  },
  // An image the API serves behind the key, as an object URL for <img> (revoke it when the view goes).
  async imageUrl(path, signal) {
    const response = await send("GET", path, { signal });
    return URL.createObjectURL(await response.blob());
  },
  // Server-Sent Events with the key: EventSource cannot send headers, so read the fetch body as a stream.
  // `resume.lastEventId`: the id of the last event seen (sent as Last-Event-ID, so the server replays what came
  // since); kept up to date as events arrive, for the next reconnection.
  async events(path, params, onEvent, signal, resume = {}) {
    const response = await send("GET", path, { params, signal, lastEventId: resume.lastEventId });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let type = "message";
        let id = null;
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue; // keep-alive comment
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") type = text;
          else if (field === "data") data.push(text);
          else if (field === "id") id = text;
        }
        if (data.length) {
          let body = data.join("\n");
          try {
            body = JSON.parse(body);
          } catch {
            // plain text data: pass it on as it is
          }
          if (id !== null) resume.lastEventId = id;
          onEvent(type, body);
        }
      }
    }
  },
};

// Which optional endpoints this server has (built by several people at different times): read once from
// /openapi.json, which any key may read.
let features = null;
export async function serverFeatures() {
  if (features) return features;
  try {
    const spec = await api.get("/openapi.json");
    // Path parameters may be named anything ({match_id}, {id}): match the shape, not the name.
    const has = (pattern, method) =>
      Object.entries(spec.paths || {}).some(([path, ops]) => pattern.test(path) && ops[method]);
    features = {
      reject: has(/^\/api\/v1\/matches\/\{[^}]+\}\/reject$/, "post"),
      suggestions: has(/^\/api\/v1\/suggestions$/, "get"),
      streams: has(/^\/api\/v1\/streams$/, "get"),
      events: has(/^\/api\/v1\/events$/, "get"),
    };
  } catch {
    features = { reject: false, suggestions: false, streams: false, events: false };
  }
  return features;
}

export function forgetFeatures() {
  features = null;
}
