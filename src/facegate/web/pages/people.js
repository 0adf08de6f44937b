// People: search by name, page through, open a person.
import { api } from "../api.js";
import { fill, h, messageArea, pager } from "../dom.js";
import { when } from "../messages.js";

const LIMIT = 24;

export async function render(ctx) {
  const search = h("input", { type: "search", id: "people-search", placeholder: "Name contains…", autocomplete: "off" });
  const message = messageArea();
  const list = h("div", { class: "people-list", "aria-live": "polite" });
  const state = { offset: 0, name: "" };

  let loads = 0; // only the latest request's answer is shown (filters can change faster than answers come)
  async function load() {
    const mine = ++loads;
    message.clear();
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api.get("/api/v1/people", { limit: LIMIT, offset: state.offset, name: state.name }, { signal: ctx.signal });
      if (mine !== loads) return;
      if (!page.items.length && state.offset > 0 && page.total > 0) {
        state.offset = Math.max(0, page.total - LIMIT);
        return load();
      }
      const rows = page.items.map((p) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: `#/people/${encodeURIComponent(p.id)}`, class: "person-link" },
            h("span", { class: "avatar", "aria-hidden": "true" }, p.name.slice(0, 1).toUpperCase()),
            h("span", { class: "name" }, p.name),
            h("span", { class: "meta" }, `${p.face_count} photo${p.face_count === 1 ? "" : "s"} · since ${when(p.created_at)}`),
          ),
        ),
      );
      fill(list,
        page.total
          ? h("ul", { class: "cards" }, rows)
          : h("p", { class: "empty" }, state.name ? `Nobody's name contains “${state.name}”.` : "Nobody is enrolled yet."),
        page.total > LIMIT ? pager(state.offset, LIMIT, page.total, (o) => ((state.offset = o), load())) : null,
      );
    } catch (err) {
      if (err.name !== "AbortError" && mine === loads) message.show(err.text);
    } finally {
      if (mine === loads) list.removeAttribute("aria-busy");
    }
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      state.name = search.value.trim();
      state.offset = 0;
      load();
    }, 250);
  });
  ctx.cleanup(() => clearTimeout(timer));

  ctx.main.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "People"),
      ctx.session.can("enroll") ? h("a", { class: "button primary", href: "#/enroll" }, "Enroll someone") : null,
    ),
    h("div", { class: "field inline" }, h("label", { for: "people-search" }, "Search"), search),
    message,
    list,
  );
  await load();
}
