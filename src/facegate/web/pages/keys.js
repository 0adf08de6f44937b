// API keys (admin): list, create (the key is shown once), revoke.
import { api } from "../api.js";
import { busy, confirmDialog, field, fill, h, messageArea } from "../dom.js";
import { when } from "../messages.js";

const SCOPES = [
  ["read", "read: see people, history, streams"],
  ["identify", "identify: identify photos"],
  ["enroll", "enroll: add, change and delete people"],
  ["admin", "admin: everything, and keys and the audit log"],
];

export async function render(ctx) {
  const message = messageArea();
  const table = h("div", { class: "table-wrap" });
  const created = h("div", { "aria-live": "polite" });

  async function load() {
    const keys = await api.get("/api/v1/keys", null, { signal: ctx.signal });
    fill(table,
      h(
        "table",
        { class: "data" },
        h("caption", {}, `${keys.filter((k) => !k.revoked_at).length} live key(s)`),
        h(
          "thead",
          {},
          h("tr", {}, ["Name", "Scopes", "Starts with", "Created", "Last used", "Expires", ""].map((t) => h("th", { scope: "col" }, t))),
        ),
        h(
          "tbody",
          {},
          keys.map((key) => {
            const mine = key.id === ctx.session.me.id;
            let action = h("span", { class: "meta" }, key.revoked_at ? `revoked ${when(key.revoked_at)}` : mine ? "this key" : "");
            if (!key.revoked_at && !mine) {
              action = h("button", { type: "button", class: "link danger", "aria-label": `Revoke ${key.name}` }, "Revoke");
              action.addEventListener("click", async () => {
                if (!(await confirmDialog(`Revoke “${key.name}”?`, "Programs using this key stop working at once.", "Revoke"))) return;
                await busy(action, message, async () => {
                  await api.del(`/api/v1/keys/${encodeURIComponent(key.id)}`);
                  await load();
                });
              });
            }
            return h(
              "tr",
              { class: key.revoked_at ? "revoked" : "" },
              h("td", {}, key.name),
              h("td", {}, key.scopes.join(", ")),
              h("td", {}, h("code", {}, `${key.prefix}…`)),
              h("td", {}, when(key.created_at)),
              h("td", {}, when(key.last_used_at) || "never"),
              h("td", {}, when(key.expires_at) || "never"),
              h("td", {}, action),
            );
          }),
        ),
      ),
    );
  }

  const name = h("input", { type: "text", required: true, maxLength: 200, autocomplete: "off" });
  const expires = h("input", { type: "datetime-local" });
  const checks = SCOPES.map(([scope, label]) =>
    h("div", { class: "field check" }, h("input", { type: "checkbox", id: `scope-${scope}`, value: scope }), h("label", { for: `scope-${scope}` }, label)),
  );
  const submit = h("button", { type: "submit", class: "primary" }, "Create key");
  const formMessage = messageArea();
  const form = h(
    "form",
    { class: "card" },
    h("h2", {}, "New key"),
    field("Name", name, "Who or what uses it, e.g. “front door camera”."),
    h("fieldset", {}, h("legend", {}, "Allowed to"), checks),
    field("Expires (optional)", expires),
    formMessage,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const scopes = checks.map((c) => c.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    if (!scopes.length) return formMessage.show("Choose at least one thing the key may do.");
    await busy(submit, formMessage, async () => {
      const body = { name: name.value.trim(), scopes };
      if (expires.value) body.expires_at = new Date(expires.value).toISOString();
      const answer = await api.post("/api/v1/keys", body);
      const secret = h("input", { type: "text", readOnly: true, value: answer.secret, id: "new-secret", class: "secret" });
      const copy = h("button", { type: "button" }, "Copy");
      copy.addEventListener("click", async () => {
        secret.select();
        try {
          await navigator.clipboard.writeText(answer.secret);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Select and copy it";
        }
      });
      fill(created,
        h(
          "div",
          { class: "card notice" },
          h("h2", {}, `Key “${answer.key.name}” created`),
          h("p", {}, "Copy it now: it is shown only this once."),
          h("div", { class: "row" }, secret, copy),
        ),
      );
      form.reset();
      secret.focus();
      secret.select();
      await load();
    });
  });

  ctx.main.append(h("h1", {}, "API keys"), message, created, table, form);
  await load();
}
