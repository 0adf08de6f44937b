// A photo with face boxes drawn over it: an SVG layer in the image's own pixel coordinates (boxes from the
// API are in pixels of the image as the user sees it), so it scales with the image on any screen.
import { h, s } from "./dom.js";

// The width of a label in the SVG's font (measured on a canvas: the SVG is not laid out yet).
const measure = document.createElement("canvas").getContext("2d");
function textWidth(text, size) {
  measure.font = `600 ${size}px system-ui, sans-serif`;
  return measure.measureText(text).width;
}

function loaded(img) {
  return img.complete && img.naturalWidth ? Promise.resolve() : img.decode().catch(() => {});
}

// faces: [{box: {left, top, width, height}, label, kind: "known" | "unknown" | "accepted", title}]
// onSelect(index) is called when a box is clicked (the list of faces beside the photo does the same by keyboard).
export async function photoWithBoxes(url, faces, { alt = "Photo", onSelect } = {}) {
  const img = h("img", { src: url, alt });
  const figure = h("figure", { class: "photo" }, img);
  await loaded(img);
  const width = img.naturalWidth || 1;
  const height = img.naturalHeight || 1;
  const layer = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none",
    "aria-hidden": "true",
    class: "boxes",
  });
  const labels = [];
  faces.forEach((face, index) => {
    const group = s("g", { class: `face ${face.kind}`, "data-index": index });
    group.append(s("title", {}, face.title || face.label || ""));
    const { left, top, width: w, height: bh } = face.box;
    group.append(s("rect", { class: "box", x: left, y: top, width: w, height: bh, "vector-effect": "non-scaling-stroke" }));
    if (face.label) {
      const tag = s("rect", { class: "tag" });
      const text = s("text", {}, face.label);
      group.append(tag, text);
      labels.push({ face, tag, text });
    }
    if (onSelect) group.addEventListener("click", () => onSelect(index));
    layer.append(group);
  });
  // Labels keep a readable size on screen (about 14 CSS pixels) however far the photo is scaled down.
  function placeLabels() {
    // The layer takes the image's own displayed size (a tall photo capped by max-height is narrower than
    // its figure), so boxes land on the faces.
    layer.setAttribute("width", img.clientWidth || width);
    layer.setAttribute("height", img.clientHeight || height);
    const shown = img.clientWidth || width;
    const size = Math.max(8, (14 * width) / shown);
    for (const { face, tag, text } of labels) {
      const { left, top, height: bh } = face.box;
      const labelWidth = textWidth(face.label, size) + size * 0.6;
      const y = top - size * 1.4 >= 0 ? top - size * 1.4 : Math.min(top + bh, height - size * 1.4);
      const x = Math.min(Math.max(0, left), Math.max(0, width - labelWidth));
      for (const [name, value] of Object.entries({ x, y, width: labelWidth, height: size * 1.4, rx: size * 0.2 })) {
        tag.setAttribute(name, value);
      }
      text.setAttribute("x", x + size * 0.3);
      text.setAttribute("y", y + size * 1.05);
      text.setAttribute("font-size", size);
    }
  }
  placeLabels();
  new ResizeObserver(placeLabels).observe(img);
  figure.append(layer);
  figure.select = (index) => {
    for (const g of layer.querySelectorAll("g.face")) g.classList.toggle("selected", Number(g.dataset.index) === index);
  };
  return figure;
}

// A square thumbnail of one face, cut from a photo by its box (with a margin), as a canvas.
export async function faceThumbnail(url, box, size = 112, alt = "Face") {
  const img = new Image();
  img.src = url;
  await loaded(img);
  const canvas = h("canvas", { width: size, height: size, class: "thumb", role: "img", "aria-label": alt });
  const side = Math.max(box.width, box.height) * 1.4;
  const cx = box.left + box.width / 2;
  const cy = box.top + box.height / 2;
  canvas.getContext("2d").drawImage(img, cx - side / 2, cy - side / 2, side, side, 0, 0, size, size);
  return canvas;
}
