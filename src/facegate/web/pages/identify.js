// Identify: a photo or a webcam snapshot; every face boxed and named (or "Unknown", with why), the
// candidates of a face shown when its box or its entry in the list is chosen.
import { api } from "../api.js";
import { cameraPanel } from "../camera.js";
import { busy, fill, h, messageArea } from "../dom.js";
import { percent, unknownReason } from "../messages.js";
import { photoWithBoxes } from "../photo.js";

function candidatesTable(face) {
  if (!face.candidates.length) return h("p", {}, "Nobody enrolled to compare with.");
  return h(
    "table",
    { class: "candidates" },
    h("caption", {}, "Nearest people"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Person"), h("th", { scope: "col" }, "Confidence"), h("th", { scope: "col" }, "Distance"))),
    h(
      "tbody",
      {},
      face.candidates.map((c) =>
        h(
          "tr",
          { class: face.match?.person_id === c.person_id ? "matched" : "" },
          h("td", {}, h("a", { href: `#/people/${encodeURIComponent(c.person_id)}` }, c.name)),
          h("td", {}, h("meter", { min: 0, max: 1, value: c.confidence, title: percent(c.confidence) }), " ", percent(c.confidence)),
          h("td", {}, c.distance.toFixed(3)),
        ),
      ),
    ),
  );
}

function describe(face) {
  return face.match
    ? `${face.match.name}, ${percent(face.match.confidence)} sure`
    : `Unknown: ${unknownReason(face.reason)}`;
}

export async function render(ctx) {
  const message = messageArea();
  const result = h("section", { class: "result", "aria-live": "polite" });
  const input = h("input", { type: "file", accept: "image/*", id: "identify-file" });

  async function identify(file) {
    if (!file) return;
    result.replaceChildren(h("p", { class: "working" }, `Looking for faces in ${file.name}…`));
    await busy(input, message, async () => {
      const form = new FormData();
      form.append("image", file);
      try {
        const answer = await api.postForm("/api/v1/identify", form);
        await show(file, answer);
      } catch (err) {
        result.replaceChildren();
        throw err;
      }
    });
  }

  async function show(file, answer) {
    const url = ctx.track(URL.createObjectURL(file));
    const faces = answer.faces;
    const details = h("div", { class: "face-detail" });
    const list = h("ol", { class: "faces" });
    let figure;
    const select = (index) => {
      figure.select(index);
      list.querySelectorAll("button").forEach((b, i) => b.setAttribute("aria-pressed", String(i === index)));
      const face = faces[index];
      details.replaceChildren(h("h3", {}, `Face ${index + 1}: ${describe(face)}`), candidatesTable(face));
    };
    figure = await photoWithBoxes(
      url,
      faces.map((face, i) => ({
        box: face.box,
        kind: face.match ? "known" : "unknown",
        label: face.match ? face.match.name : "Unknown",
        title: [`Face ${i + 1}: ${describe(face)}`, ...face.candidates.map((c) => `${c.name}: ${percent(c.confidence)}`)].join("\n"),
      })),
      { alt: `${file.name} with ${faces.length} face${faces.length === 1 ? "" : "s"} marked`, onSelect: (i) => select(i) },
    );
    faces.forEach((face, i) =>
      list.append(
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: `face-item ${face.match ? "known" : "unknown"}`, "aria-pressed": "false", onclick: () => select(i) },
            h("strong", {}, face.match ? face.match.name : "Unknown"),
            h("span", {}, face.match ? ` ${percent(face.match.confidence)}` : ` — ${unknownReason(face.reason)}`),
          ),
        ),
      ),
    );
    const summary = faces.length
      ? `${file.name}: ${faces.length} face${faces.length === 1 ? "" : "s"} found; ${faces.filter((f) => f.match).length} recognised.`
      : `${file.name}: No face was found in this photo.`;
    fill(result,
      h("div", { class: "split" }, figure, h("div", {}, h("p", { class: faces.length ? "summary" : "message warn" }, summary), list, details)),
    );
    if (faces.length) select(0);
  }

  input.addEventListener("change", () => {
    const file = input.files[0];
    input.value = ""; // choosing the same photo again identifies it again
    identify(file);
  });
  ctx.main.append(
    h("h1", {}, "Identify"),
    h("p", { class: "lead" }, "Find and name every face in a photo. Choose a face to see the nearest people."),
    h("div", { class: "card" }, h("div", { class: "field" }, h("label", { for: "identify-file" }, "Photo"), input), cameraPanel(ctx, identify, { label: "Use the webcam" }), message),
    result,
  );
}
