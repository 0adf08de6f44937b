// Match history: every face identify (or a video stream) saw, newest first, with its crop; filters by person,
// unknown only and time; enroll an unknown face; "not this person" on a wrong match.
import { api, serverFeatures } from "../api.js";
import { busy, field, fill, h, messageArea, pager } from "../dom.js";
import { percent, when } from "../messages.js";

const LIMIT = 20;

// People for the filter and the "add to" choice (names only; the first 500 by name).
async function peopleOptions(signal) {
  const page = await api.get("/api/v1/people", { limit: 500 }, { signal });
  return page.items.map((p) => ({ id: p.id, name: p.name })).sort((a, b) => a.name.localeCompare(b.name));
}

function personSelect(people, { id, blank }) {
  return h("select", { id }, h("option", { value: "" }, blank), people.map((p) => h("option", { value: p.id }, p.name)));
}

function isoOrNull(localValue) {
  return localValue ? new Date(localValue).toISOString() : null;
}

export async function render(ctx) {
  const features = await serverFeatures();
  const canEnroll = ctx.session.can("enroll");
  const people = await peopleOptions(ctx.signal);
  const state = { offset: 0, person_id: ctx.params.get("person_id") || "", unknown: false, since: "", until: "" };
  const message = messageArea();
  const list = h("div", { "aria-live": "polite" });

  const who = personSelect(people, { id: "filter-person", blank: "Anyone" });
  who.value = state.person_id;
  const unknown = h("input", { type: "checkbox", id: "filter-unknown" });
  const since = h("input", { type: "datetime-local", id: "filter-since" });
  const until = h("input", { type: "datetime-local", id: "filter-until" });
  const filters = h(
    "form",
    { class: "filters card", "aria-label": "Filters" },
    field("Person", who),
    h("div", { class: "field check" }, unknown, h("label", { for: "filter-unknown" }, "Unknown faces only")),
    field("From", since),
    field("Until", until),
  );
  filters.addEventListener("change", () => {
    Object.assign(state, { offset: 0, person_id: who.value, unknown: unknown.checked, since: since.value, until: until.value });
    who.disabled = unknown.checked;
    load();
  });
  filters.addEventListener("submit", (event) => event.preventDefault());

  function enrollPanel(match, card) {
    const name = h("input", { type: "text", maxLength: 200, placeholder: "New person's name", "aria-label": "New person's name" });
    const onto = personSelect(people, { id: `onto-${match.id}`, blank: "…or add to someone" });
    onto.setAttribute("aria-label", "Add to an enrolled person");
    const go = h("button", { type: "submit", class: "primary" }, "Enroll");
    const note = messageArea();
    const form = h("form", { class: "enroll-match" }, name, onto, go, note);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = new FormData();
      if (onto.value) body.append("person_id", onto.value);
      else if (name.value.trim()) body.append("name", name.value.trim());
      else return note.show("Type a name, or choose someone.");
      await busy(go, note, async () => {
        const result = await api.postForm(`/api/v1/matches/${match.id}/enroll`, body);
        form.replaceWith(
          h("p", { class: "message success" }, "Enrolled as ", h("a", { href: `#/people/${encodeURIComponent(result.person.id)}` }, result.person.name), "."),
        );
        card.classList.remove("unknown");
      });
    });
    return form;
  }

  function card(match) {
    const thumb = h("div", { class: "thumb placeholder", "aria-hidden": "true" });
    if (match.has_crop) {
      api
        .imageUrl(`/api/v1/matches/${match.id}/crop`, ctx.signal)
        .then((url) => thumb.replaceWith(h("img", { class: "thumb", src: ctx.track(url), alt: `Face seen ${when(match.created_at)}` })))
        .catch(() => {});
    }
    const known = match.person_id !== null;
    const item = h(
      "li",
      { class: `match ${known ? "known" : "unknown"}${match.rejected ? " rejected" : ""}` },
      thumb,
      h(
        "div",
        { class: "body" },
        h(
          "p",
          { class: "who" },
          known ? h("a", { href: `#/people/${encodeURIComponent(match.person_id)}` }, match.name) : h("strong", {}, "Unknown"),
          known && match.confidence !== null ? h("span", { class: "meta" }, ` ${percent(match.confidence)}`) : null,
        ),
        h("p", { class: "meta" }, `${when(match.created_at)} · ${match.source}`),
      ),
    );
    const actions = h("div", { class: "actions" });
    if (canEnroll && !known) {
      const open = h("button", { type: "button" }, "Enroll this face");
      open.addEventListener("click", () => {
        const panel = enrollPanel(match, item);
        open.replaceWith(panel);
        panel.querySelector("input").focus();
      });
      if (match.has_crop) actions.append(open);
    }
    if (canEnroll && known && features.reject && !match.rejected) {
      const reject = h("button", { type: "button", class: "link danger" }, "Not this person");
      const note = messageArea();
      reject.addEventListener("click", () =>
        busy(reject, note, async () => {
          try {
            await api.post(`/api/v1/matches/${match.id}/reject`);
          } catch (err) {
            if (err.status === 404 && err.code !== "match_not_found") throw { text: "This server cannot do that yet." };
            if (err.status === 405) throw { text: "This server cannot do that yet." };
            throw err;
          }
          reject.replaceWith(h("span", { class: "meta" }, `Marked: not ${match.name}.`));
          item.classList.add("rejected");
        }),
      );
      actions.append(reject, note);
    }
    item.querySelector(".body").append(actions);
    return item;
  }

  let loads = 0; // only the latest request's answer is shown (filters can change faster than answers come)
  async function load() {
    const mine = ++loads;
    message.clear();
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api.get(
        "/api/v1/matches",
        {
          limit: LIMIT,
          offset: state.offset,
          person_id: state.unknown ? null : state.person_id,
          unknown: state.unknown,
          since: isoOrNull(state.since),
          until: isoOrNull(state.until),
        },
        { signal: ctx.signal },
      );
      if (mine !== loads) return;
      fill(list,
        page.items.length ? h("ul", { class: "matches" }, page.items.map(card)) : h("p", { class: "empty" }, "Nothing seen with these filters."),
        page.total > LIMIT ? pager(state.offset, LIMIT, page.total, (o) => ((state.offset = o), load())) : null,
      );
    } catch (err) {
      if (err.name !== "AbortError" && mine === loads) message.show(err.text);
    } finally {
      if (mine === loads) list.removeAttribute("aria-busy");
    }
  }

  ctx.main.append(h("h1", {}, "History"), h("p", { class: "lead" }, "Every face that was looked at, newest first."), filters, message, list);
  await load();
}
