// facegate web client: a hash router over small page modules. Every call goes through api.js with the
// signed-in key; what the key's scopes do not allow is left out of the menu and the pages.
import { api, forgetFeatures, serverFeatures, storedKey, storeKey, whenUnauthorized } from "./api.js";
import { h } from "./dom.js";

// Menu entries in order: [hash, label, scope needed, optional endpoint the server must have].
const PAGES = [
  ["#/identify", "Identify", "identify", null, () => import("./pages/identify.js")],
  ["#/enroll", "Enroll", "enroll", null, () => import("./pages/enroll.js")],
  ["#/people", "People", "read", null, () => import("./pages/people.js")],
  ["#/history", "History", "read", null, () => import("./pages/history.js")],
  ["#/suggestions", "Suggested", "read", "suggestions", () => import("./pages/suggestions.js")],
  ["#/live", "Live", "read", "streams", () => import("./pages/live.js")],
  ["#/keys", "Keys", "admin", null, () => import("./pages/keys.js")],
  ["#/audit", "Audit log", "admin", null, () => import("./pages/audit.js")],
];
const PERSON = /^#\/people\/([^/]+)$/;

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const banner = document.getElementById("banner");
const menuToggle = document.querySelector(".menu-toggle");

const session = {
  me: null, // {id, name, scopes}
  features: null,
  can(scope) {
    const scopes = this.me?.scopes ?? [];
    return scopes.includes("admin") || scopes.includes(scope);
  },
};

let view = null; // the current view's AbortController and cleanups

function showBanner(text) {
  banner.replaceChildren(text);
  banner.hidden = !text;
}

function signOut(reason) {
  storeKey(null);
  session.me = null;
  forgetFeatures();
  renderChrome();
  if (location.hash !== "#/signin") location.hash = "#/signin";
  else route();
  if (reason) showBanner(reason);
}

whenUnauthorized((error) => signOut(`${error.text} Sign in again.`));

function allowed([, , scope, feature]) {
  return session.can(scope) && (!feature || session.features?.[feature]);
}

function renderChrome() {
  const signedIn = Boolean(session.me);
  nav.hidden = !signedIn;
  who.hidden = !signedIn;
  menuToggle.hidden = !signedIn;
  if (!signedIn) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  nav.replaceChildren(
    h("ul", {}, PAGES.filter(allowed).map(([hash, label]) => h("li", {}, h("a", { href: hash }, label)))),
  );
  who.replaceChildren(
    h("span", { class: "key-name", title: `Scopes: ${session.me.scopes.join(", ")}` }, session.me.name),
    h("button", { type: "button", class: "link", onclick: () => signOut(null) }, "Sign out"),
  );
}

function markCurrent() {
  const path = location.hash.split("?")[0];
  const hash = path.startsWith("#/people/") ? "#/people" : path;
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === hash) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.classList.remove("menu-open");
  menuToggle.setAttribute("aria-expanded", "false");
}

// The skip link moves focus only: as a plain #main link it would change the route.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

menuToggle.addEventListener("click", () => {
  const open = document.body.classList.toggle("menu-open");
  menuToggle.setAttribute("aria-expanded", String(open));
});

async function signIn(key) {
  const me = await api.me(key); // throws ApiError: 401 bad key, 0 server down, ...
  storeKey(key);
  session.me = me;
  session.features = await serverFeatures();
  showBanner("");
  renderChrome();
}

function signInPage(ctx) {
  const input = h("input", {
    type: "password",
    name: "key",
    autocomplete: "current-password",
    required: true,
    spellcheck: false,
    placeholder: "fg_…",
  });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const message = h("p", { class: "message error", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h(
      "p",
      {},
      "Use an API key. An admin creates one with ",
      h("code", {}, "facegate keys create --name NAME --scope read"),
      ". The key stays in this browser tab only.",
    ),
    h("div", { class: "field" }, h("label", { for: "key" }, "API key"), Object.assign(input, { id: "key" })),
    message,
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    message.hidden = true;
    try {
      await signIn(input.value.trim());
      location.hash = "#/";
    } catch (err) {
      message.textContent = err.status === 401 ? "This API key is not valid: it is unknown, revoked or expired." : err.text;
      message.hidden = false;
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  ctx.main.append(form);
  input.focus();
}

function firstPage() {
  return PAGES.find(allowed)?.[0] ?? "#/people";
}

async function route() {
  view?.abort.abort();
  for (const fn of view?.cleanups ?? []) fn();
  const abort = new AbortController();
  const cleanups = [];
  view = { abort, cleanups };
  // Each view renders into its own container: a slow page that finishes after the person moved on appends
  // to a detached node, never under the next page.
  const container = h("div", { class: "view" });
  main.replaceChildren(container);
  const ctx = {
    main: container,
    session,
    signal: abort.signal,
    cleanup: (fn) => cleanups.push(fn),
    // Object URLs of images fetched with the key: released when the view goes.
    track(url) {
      cleanups.push(() => URL.revokeObjectURL(url));
      return url;
    },
    banner: showBanner,
  };
  // A page may take parameters after "?" (#/history?person_id=...): ids only, never the key.
  const [hash, query = ""] = (location.hash || "#/").split("?");
  ctx.params = new URLSearchParams(query);

  if (!session.me && storedKey()) {
    try {
      await signIn(storedKey());
    } catch (err) {
      if (err.status !== 401) {
        // Server down or busy: keep the key, say so, and offer to retry.
        showBanner(err.text);
        container.append(h("p", {}, h("button", { type: "button", onclick: route }, "Try again")));
        return;
      }
      storeKey(null);
      showBanner(`${err.text} Sign in again.`);
    }
  }
  if (!session.me) {
    if (hash !== "#/signin") {
      location.replace("#/signin");
      return;
    }
    document.title = "Sign in · facegate";
    signInPage(ctx);
    return;
  }
  if (hash === "#/signin" || hash === "#/" || hash === "#") {
    location.replace(firstPage());
    return;
  }
  markCurrent();
  const person = PERSON.exec(hash);
  const page = person ? PAGES[2] : PAGES.find(([h]) => h === hash);
  if (!page) {
    container.append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: firstPage() }, "Go to the start page")));
    return;
  }
  if (!allowed(page)) {
    container.append(
      h("h1", {}, page[1]),
      h("p", { class: "message error", role: "alert" }, `Your key (${session.me.name}) is not allowed to see this page.`),
    );
    return;
  }
  document.title = `${page[1]} · facegate`;
  try {
    const module = person ? await import("./pages/person.js") : await page[4]();
    await module.render(ctx, person ? decodeURIComponent(person[1]) : undefined);
  } catch (err) {
    if (err.name === "AbortError" || abort.signal.aborted) return;
    container.append(h("p", { class: "message error", role: "alert" }, err.text || "Something went wrong on this page."));
    if (!err.text) setTimeout(() => { throw err; }); // a bug, not an API answer: report it as uncaught
  }
  if (!abort.signal.aborted) main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", () => {
  showBanner("");
  route();
});
route();
