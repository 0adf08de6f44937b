// Suggested people: unknown faces seen again and again, grouped. Name them (a new person), add them to someone
// enrolled (merge), or dismiss them.
import { api } from "../api.js";
import { busy, confirmDialog, fill, h, messageArea, pager } from "../dom.js";
import { when } from "../messages.js";

const LIMIT = 12;

export async function render(ctx) {
  const canEnroll = ctx.session.can("enroll");
  const message = messageArea();
  const list = h("div", { "aria-live": "polite" });
  const state = { offset: 0 };
  const people = (await api.get("/api/v1/people", { limit: 500 }, { signal: ctx.signal })).items.sort((a, b) =>
    a.name.localeCompare(b.name),
  );

  function crops(suggestion) {
    const strip = h("div", { class: "crops" });
    for (const rep of suggestion.representatives) {
      const slot = h("div", { class: "thumb placeholder", "aria-hidden": "true" });
      strip.append(slot);
      if (!rep.crop_url) continue;
      api
        .imageUrl(rep.crop_url, ctx.signal)
        .then((url) => slot.replaceWith(h("img", { class: "thumb", src: ctx.track(url), alt: "A face of this group" })))
        .catch(() => {});
    }
    return strip;
  }

  function actions(suggestion, card) {
    const note = messageArea();
    const name = h("input", { type: "text", maxLength: 200, placeholder: "Their name", "aria-label": "Their name" });
    const create = h("button", { type: "submit", class: "primary" }, "Enroll as new person");
    const nameForm = h("form", { class: "row" }, name, create);
    const onto = h(
      "select",
      { "aria-label": "An enrolled person" },
      h("option", { value: "" }, "Choose someone…"),
      people.map((p) => h("option", { value: p.id }, p.name)),
    );
    const merge = h("button", { type: "submit" }, "Add to this person");
    const mergeForm = h("form", { class: "row" }, onto, merge);
    const dismiss = h("button", { type: "button", class: "link danger" }, "Dismiss");

    async function enroll(body, button) {
      await busy(button, note, async () => {
        const result = await api.post(`/api/v1/suggestions/${encodeURIComponent(suggestion.id)}/enroll`, body);
        fill(
          card,
          h(
            "p",
            { class: "message success" },
            `${result.faces_added} face${result.faces_added === 1 ? "" : "s"} enrolled as `,
            h("a", { href: `#/people/${encodeURIComponent(result.person.id)}` }, result.person.name),
            ".",
          ),
        );
      });
    }
    nameForm.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!name.value.trim()) return note.show("Type their name.");
      return enroll({ name: name.value.trim() }, create);
    });
    mergeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!onto.value) return note.show("Choose who they are.");
      return enroll({ person_id: onto.value }, merge);
    });
    dismiss.addEventListener("click", async () => {
      const sure = await confirmDialog("Dismiss this suggestion?", "These faces will not be suggested again.", "Dismiss");
      if (!sure) return;
      await busy(dismiss, note, async () => {
        await api.del(`/api/v1/suggestions/${encodeURIComponent(suggestion.id)}`);
        card.remove();
      });
    });
    return h("div", { class: "suggestion-actions" }, nameForm, people.length ? mergeForm : null, dismiss, note);
  }

  async function load() {
    message.clear();
    try {
      const page = await api.get("/api/v1/suggestions", { limit: LIMIT, offset: state.offset }, { signal: ctx.signal });
      const cards = page.items.map((s) => {
        const card = h(
          "li",
          { class: "card suggestion" },
          h("h2", {}, `Seen ${s.sightings} time${s.sightings === 1 ? "" : "s"}`),
          h("p", { class: "meta" }, `${s.size} faces · ${when(s.first_seen)} – ${when(s.last_seen)} · ${s.sources.join(", ")}`),
          crops(s),
        );
        if (canEnroll) card.append(actions(s, card));
        return card;
      });
      fill(
        list,
        cards.length ? h("ul", { class: "suggestions" }, cards) : h("p", { class: "empty" }, "No suggestions: no unknown face keeps coming back."),
        page.total > LIMIT ? pager(state.offset, LIMIT, page.total, (o) => ((state.offset = o), load())) : null,
      );
    } catch (err) {
      if (err.name !== "AbortError") message.show(err.text);
    }
  }

  ctx.main.append(
    h("h1", {}, "Suggested people"),
    h("p", { class: "lead" }, "Unknown faces seen again and again, grouped by likeness. Name them, add them to someone, or dismiss them."),
    message,
    list,
  );
  await load();
}
