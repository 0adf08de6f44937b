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
  const unit = Math.max(width, height) / 40; // label size: about 1/40 of the photo, whatever its pixels
  const layer = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none",
    "aria-hidden": "true",
    class: "boxes",
  });
  faces.forEach((face, index) => {
    const { left, top, width: w, height: bh } = face.box;
    const group = s("g", { class: `face ${face.kind}`, "data-index": index });
    group.append(s("title", {}, face.title || face.label || ""));
    group.append(s("rect", { class: "box", x: left, y: top, width: w, height: bh, "vector-effect": "non-scaling-stroke" }));
    if (face.label) {
      const size = Math.max(unit, 10);
      const labelWidth = textWidth(face.label, size) + size * 0.6;
      const above = top - size * 1.4 >= 0;
      const y = above ? top - size * 1.4 : top + bh;
      const x = Math.min(Math.max(0, left), Math.max(0, width - labelWidth));
      group.append(s("rect", { class: "tag", x, y, width: labelWidth, height: size * 1.4, rx: size * 0.2 }));
      group.append(s("text", { x: x + size * 0.3, y: y + size * 1.05, "font-size": size }, face.label));
    }
    if (onSelect) group.addEventListener("click", () => onSelect(index));
    layer.append(group);
  });
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
