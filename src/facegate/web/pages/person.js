// A person: their photos (face thumbnails), rename, add photos, delete a photo, delete the person.
import { api } from "../api.js";
import { busy, confirmDialog, fill, h, messageArea } from "../dom.js";
import { when } from "../messages.js";
import { faceThumbnail } from "../photo.js";
import { enrollForm } from "./enroll.js";

export async function render(ctx, personId) {
  const base = `/api/v1/people/${encodeURIComponent(personId)}`;
  const canEdit = ctx.session.can("enroll");
  const message = messageArea();
  const heading = h("h1", {});
  const meta = h("p", { class: "meta" });
  const grid = h("ul", { class: "face-grid", "aria-label": "Photos" });
  let person = await api.get(base, null, { signal: ctx.signal });

  function showPerson() {
    heading.textContent = person.name;
    document.title = `${person.name} · facegate`;
    fill(meta,
      `${person.face_count} photo${person.face_count === 1 ? "" : "s"} · enrolled ${when(person.created_at)}`,
      person.external_id ? ` · external id ${person.external_id}` : "",
    );
  }

  async function loadFaces() {
    const faces = (await api.get(`${base}/faces`, null, { signal: ctx.signal })).items;
    // The fused engine keeps one face row per engine for each photo: show each photo once.
    const photos = new Map();
    for (const face of faces) if (!photos.has(face.image_id)) photos.set(face.image_id, face);
    fill(grid,
      ...[...photos.values()].map((face) => {
        const item = h("li", { class: "face-tile" }, h("div", { class: "thumb placeholder", "aria-hidden": "true" }));
        api
          .imageUrl(`${base}/faces/${face.id}/image`, ctx.signal)
          .then((url) => faceThumbnail(ctx.track(url), face.box, 128, `Photo ${face.id} of ${person.name}`))
          .then((thumb) => item.firstChild.replaceWith(thumb))
          .catch(() => item.firstChild.replaceChildren("?"));
        item.append(h("small", {}, `quality ${face.quality.toFixed(2)}`));
        if (canEdit) {
          const remove = h("button", { type: "button", class: "link danger", "aria-label": `Delete photo ${face.id}` }, "Delete");
          remove.addEventListener("click", async () => {
            const sure = await confirmDialog("Delete this photo?", `${person.name} will no longer be recognised from it.`);
            if (!sure) return;
            await busy(remove, message, async () => {
              await api.del(`${base}/faces/${face.id}`);
              person = await api.get(base);
              showPerson();
              await loadFaces();
              message.show("Photo deleted.", "success");
            });
          });
          item.append(remove);
        }
        return item;
      }),
    );
    if (!photos.size) grid.replaceChildren(h("li", { class: "empty" }, "No photos."));
  }

  const sections = [];
  if (canEdit) {
    const nameInput = h("input", { type: "text", id: "rename", value: person.name, required: true, maxLength: 200 });
    const save = h("button", { type: "submit" }, "Rename");
    const rename = h("form", { class: "row rename" }, h("label", { for: "rename" }, "Name"), nameInput, save);
    rename.addEventListener("submit", async (event) => {
      event.preventDefault();
      await busy(save, message, async () => {
        person = await api.patch(base, { name: nameInput.value.trim() });
        showPerson();
        message.show("Renamed.", "success");
      });
    });
    sections.push(rename);
  }
  sections.push(h("h2", {}, "Photos"), grid);
  if (canEdit) {
    const add = h(
      "details",
      { class: "add-photos" },
      h("summary", {}, "Add photos"),
      enrollForm(ctx, {
        personId,
        onDone: async () => {
          person = await api.get(base);
          showPerson();
          await loadFaces();
        },
      }),
    );
    const del = h("button", { type: "button", class: "danger" }, "Delete this person");
    del.addEventListener("click", async () => {
      const sure = await confirmDialog(
        `Delete ${person.name}?`,
        `All ${person.face_count} photo${person.face_count === 1 ? "" : "s"} and the match history of ${person.name} are deleted. This cannot be undone.`,
        "Delete person",
      );
      if (!sure) return;
      await busy(del, message, async () => {
        await api.del(base);
        location.hash = "#/people";
      });
    });
    sections.push(add, h("section", { class: "danger-zone" }, h("h2", {}, "Delete"), del));
  }
  showPerson();
  ctx.main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/people" }, "People"), " / "),
    heading,
    meta,
    h("p", {}, h("a", { href: `#/history?person_id=${encodeURIComponent(personId)}` }, "See when they were recognised")),
    message,
    ...sections,
  );
  await loadFaces();
}
