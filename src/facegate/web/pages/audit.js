// The audit log (admin): who did what and when, newest first.
import { api } from "../api.js";
import { field, fill, h, messageArea, pager } from "../dom.js";
import { when } from "../messages.js";

const LIMIT = 50;

// Targets that are people still there to look at (a deleted person's page would only say "not found").
const PERSON_TARGET = /^(person_created|person_updated|person_merged|faces_added|face_deleted|match_enrolled|suggestion_enrolled)$/;

function target(entry) {
  if (!entry.target) return "";
  const id = h("code", {}, entry.target);
  return PERSON_TARGET.test(entry.action) ? h("a", { href: `#/people/${encodeURIComponent(entry.target)}` }, id) : id;
}

function detail(value) {
  const text = Object.entries(value || {})
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

export async function render(ctx) {
  const message = messageArea();
  const table = h("div", { class: "table-wrap", "aria-live": "polite" });
  const action = h("input", { type: "text", placeholder: "e.g. person_deleted", maxLength: 50, autocomplete: "off" });
  const state = { offset: 0, action: "" };
  const keyNames = new Map((await api.get("/api/v1/keys", null, { signal: ctx.signal })).map((k) => [k.id, k.name]));

  async function load() {
    message.clear();
    try {
      const page = await api.get("/api/v1/audit", { limit: LIMIT, offset: state.offset, action: state.action }, { signal: ctx.signal });
      fill(table,
        page.items.length
          ? h(
              "table",
              { class: "data" },
              h("thead", {}, h("tr", {}, ["When", "What", "Key", "From", "Target", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
              h(
                "tbody",
                {},
                page.items.map((e) =>
                  h(
                    "tr",
                    {},
                    h("td", {}, when(e.at)),
                    h("td", {}, e.action.replaceAll("_", " ")),
                    h("td", {}, keyNames.get(e.key_id) || e.key_id || ""),
                    h("td", {}, e.address || ""),
                    h("td", {}, target(e)),
                    h("td", { class: "detail" }, detail(e.detail)),
                  ),
                ),
              ),
            )
          : h("p", { class: "empty" }, "Nothing recorded."),
        page.total > LIMIT ? pager(state.offset, LIMIT, page.total, (o) => ((state.offset = o), load())) : null,
      );
    } catch (err) {
      if (err.name !== "AbortError") message.show(err.text);
    }
  }
  const filter = h("form", { class: "filters card" }, field("Action", action), h("button", { type: "submit" }, "Filter"));
  filter.addEventListener("submit", (event) => {
    event.preventDefault();
    state.action = action.value.trim();
    state.offset = 0;
    load();
  });
  ctx.main.append(h("h1", {}, "Audit log"), filter, message, table);
  await load();
}
