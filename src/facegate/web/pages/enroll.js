// Enroll: a new person from photos (files or webcam snapshots), with each photo's result: accepted with its
// face boxed, or rejected with the reason in plain words. The same form adds photos to someone (person.js).
import { api } from "../api.js";
import { cameraPanel } from "../camera.js";
import { busy, field, h, messageArea } from "../dom.js";
import { enrollReason } from "../messages.js";
import { photoWithBoxes } from "../photo.js";

// A 422 (no photo usable) names each photo's reason in its message: "(a.jpg: no_face; b.jpg: face_too_small)".
function rejectionsFromMessage(message, files) {
  const found = [];
  for (const file of files) {
    const escaped = file.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const match = new RegExp(`(?:\\(|; )${escaped}: ([a-z_]+)`).exec(message || "");
    if (match) found.push({ filename: file.name, reason: match[1] });
  }
  return found;
}

// Unique names per upload: the API reports results by filename.
function uniqueName(name, taken) {
  let candidate = name;
  for (let n = 2; taken.has(candidate); n++) candidate = name.replace(/(\.[^.]*)?$/, (ext) => ` (${n})${ext || ""}`);
  taken.add(candidate);
  return candidate;
}

// options.personId: add to this person (no name field); options.onDone(result) after a success.
export function enrollForm(ctx, { personId = null, onDone = null } = {}) {
  const files = []; // File objects, named uniquely
  const names = new Set();
  const nameInput = h("input", { type: "text", name: "name", required: true, maxLength: 200, autocomplete: "off" });
  const fileInput = h("input", { type: "file", accept: "image/*", multiple: true });
  const chosen = h("ul", { class: "chosen", "aria-label": "Photos to send" });
  const submit = h("button", { type: "submit", class: "primary" }, personId ? "Add photos" : "Enroll");
  const message = messageArea();
  const results = h("section", { class: "results", "aria-live": "polite" });

  function add(file) {
    const named = new File([file], uniqueName(file.name, names), { type: file.type });
    files.push(named);
    const url = ctx.track(URL.createObjectURL(named));
    const item = h(
      "li",
      {},
      h("img", { src: url, alt: "" }),
      h("span", {}, named.name),
      h("button", { type: "button", class: "link", "aria-label": `Remove ${named.name}`, onclick: () => {
        files.splice(files.indexOf(named), 1);
        names.delete(named.name);
        item.remove();
      } }, "Remove"),
    );
    chosen.append(item);
  }

  fileInput.addEventListener("change", () => {
    for (const file of fileInput.files) add(file);
    fileInput.value = "";
  });

  async function showResults(answer, sent) {
    const accepted = new Map(answer.faces.map((f) => [f.filename, f]));
    const rejected = new Map(answer.rejected.map((r) => [r.filename, r]));
    const items = [];
    for (const file of sent) {
      const url = ctx.track(URL.createObjectURL(file));
      const face = accepted.get(file.name);
      if (face) {
        const figure = await photoWithBoxes(url, [{ box: face.box, kind: "accepted", label: "✓" }], { alt: `${file.name}: face found` });
        items.push(h("li", { class: "accepted" }, figure, h("p", {}, h("strong", {}, "Accepted: "), file.name)));
      } else {
        const why = rejected.get(file.name);
        items.push(
          h(
            "li",
            { class: "rejected" },
            file.type.startsWith("image/") ? h("img", { src: url, alt: file.name }) : null,
            h("p", {}, h("strong", {}, "Not used: "), file.name, h("br"), enrollReason(why?.reason, why?.message)),
          ),
        );
      }
    }
    results.replaceChildren(h("ul", { class: "photo-results" }, items));
  }

  const form = h(
    "form",
    { class: "card enroll-form" },
    personId ? null : field("Name", nameInput),
    field("Photos", fileInput, "One face per photo, facing the camera; several photos recognise better."),
    cameraPanel(ctx, add, { label: "Take photos with the webcam" }),
    chosen,
    message,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!files.length) {
      message.show("Choose at least one photo.");
      return;
    }
    const sent = files.slice();
    await busy(submit, message, async () => {
      const body = new FormData();
      if (personId) body.append("person_id", personId);
      else body.append("name", nameInput.value.trim());
      for (const file of sent) body.append("image", file);
      results.replaceChildren(h("p", { class: "working" }, `Sending ${sent.length} photo${sent.length === 1 ? "" : "s"}…`));
      try {
        const answer = await api.postForm("/api/v1/enroll", body);
        const count = answer.faces.length;
        message.show(
          h(
            "span",
            {},
            `${personId ? "Added" : "Enrolled"} `,
            h("a", { href: `#/people/${encodeURIComponent(answer.person.id)}` }, answer.person.name),
            ` with ${count} photo${count === 1 ? "" : "s"}${answer.rejected.length ? `; ${answer.rejected.length} not used (below)` : ""}.`,
          ),
          "success",
        );
        await showResults(answer, sent);
        files.length = 0;
        names.clear();
        chosen.replaceChildren();
        if (!personId) nameInput.value = "";
        onDone?.(answer);
      } catch (err) {
        const reasons = err.status === 422 ? rejectionsFromMessage(err.message, sent) : [];
        if (!reasons.length) {
          results.replaceChildren();
          throw err;
        }
        await showResults({ faces: [], rejected: reasons }, sent);
        const what = personId ? "No photo was added" : "Nobody was enrolled";
        throw { text: `${what}: no photo had a usable face. Each photo's reason is below.` };
      }
    });
  });
  return h("div", {}, form, results);
}

export async function render(ctx) {
  ctx.main.append(
    h("h1", {}, "Enroll a person"),
    h("p", { class: "lead" }, "Add someone from photos or the webcam; each photo's result is shown below."),
    enrollForm(ctx),
  );
}
