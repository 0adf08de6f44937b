// Small DOM helpers: elements from code (never HTML strings, so nothing the API returns is parsed as markup).

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Replace a node's children; null / false children are skipped (replaceChildren would print "null").
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// h("button", {type: "button", onclick: f, class: "primary"}, "Save")
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name in node && !name.includes("-") && name !== "list") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  return append(node, children);
}

export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  return append(node, children);
}

// A message area beside a form: errors appear where the person is looking, and are announced.
export function messageArea() {
  const area = h("div", { class: "message", role: "status", "aria-live": "polite", hidden: true });
  area.show = (text, kind = "error") => {
    area.className = `message ${kind}`;
    area.setAttribute("role", kind === "error" ? "alert" : "status");
    area.replaceChildren(text);
    area.hidden = false;
  };
  area.clear = () => {
    area.hidden = true;
    area.replaceChildren();
  };
  return area;
}

// Run `work` with the button disabled and a spinner; the message area shows the error in plain words.
export async function busy(button, area, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  area?.clear();
  try {
    return await work();
  } catch (err) {
    if (err.name === "AbortError") return undefined;
    if (area) area.show(err.text || err.message);
    else throw err;
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// A modal question; resolves true when confirmed. Focus goes to Cancel first, so Enter never deletes.
export function confirmDialog(title, text, confirmLabel = "Delete") {
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", onclick: () => close(false) }, "Cancel");
    const ok = h("button", { type: "button", class: "danger", onclick: () => close(true) }, confirmLabel);
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, text),
      h("div", { class: "actions" }, cancel, ok),
    );
    function close(answer) {
      dialog.close();
      dialog.remove();
      resolve(answer);
    }
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("small", { class: "hint" }, hint) : null,
  );
}

// A page's "n-m of N" with Previous / Next buttons; calls go(offset).
export function pager(offset, limit, total, go) {
  const last = Math.min(offset + limit, total);
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", disabled: offset <= 0, onclick: () => go(Math.max(0, offset - limit)) }, "Previous"),
    h("span", {}, total ? `${offset + 1}–${last} of ${total}` : "none"),
    h("button", { type: "button", disabled: last >= total, onclick: () => go(offset + limit) }, "Next"),
  );
}
