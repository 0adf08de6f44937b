// Live view: a stream's latest frame with the people in view boxed and named (polled), and the event feed
// (Server-Sent Events read with fetch, since EventSource cannot send the key).
import { api, serverFeatures } from "../api.js";
import { busy, confirmDialog, field, fill, h, messageArea } from "../dom.js";
import { percent, when } from "../messages.js";

const POLL_MS = 700;
const FEED_MAX = 50;

function describeEvent(type, body) {
  const who = body.name || "Someone unknown";
  if (type === "appeared") return `${who} appeared${body.stream ? ` on ${body.stream}` : ""}${body.confidence != null ? ` (${percent(body.confidence)})` : ""}`;
  if (type === "updated") return `${body.name ? `Recognised as ${body.name}` : "No longer recognised"}${body.stream ? ` on ${body.stream}` : ""}`;
  if (type === "left") return `${who} left${body.stream ? ` ${body.stream}` : ""}`;
  if (type === "gap") return "Some events were missed while disconnected";
  if (type === "unknown_person_recurring") return `An unknown person keeps coming back (${body.sightings} sightings): see Suggested`;
  return type.replaceAll("_", " ");
}

export async function render(ctx) {
  const features = await serverFeatures();
  const isAdmin = ctx.session.can("admin");
  const message = messageArea();
  const picker = h("ul", { class: "streams", "aria-label": "Streams" });
  const screen = h("div", { class: "screen" }, h("p", { class: "empty" }, "Choose a stream."));
  const status = h("p", { class: "meta", "aria-live": "polite" });
  const inView = h("ul", { class: "in-view", "aria-label": "In view now" });
  const feed = h("ol", { class: "feed", "aria-label": "Events", "aria-live": "polite" });
  let current = null;
  let currentEnabled = true;
  let timer = null;
  let shown = null; // the object URL of the frame on screen

  async function loadStreams() {
    const { items } = await api.get("/api/v1/streams", null, { signal: ctx.signal });
    fill(
      picker,
      items.length
        ? items.map((s) =>
            h(
              "li",
              {},
              h(
                "button",
                { type: "button", "aria-pressed": String(s.id === current), onclick: () => watch(s.id) },
                s.name,
                " ",
                h("span", { class: "state" }, s.state),
              ),
            ),
          )
        : h("li", { class: "empty" }, "No streams yet."),
    );
    if (!current && items.length) watch(items[0].id);
  }

  async function poll() {
    if (!current || ctx.signal.aborted) return;
    const id = current;
    try {
      const stream = await api.get(`/api/v1/streams/${encodeURIComponent(id)}`, null, { signal: ctx.signal });
      if (id !== current) return;
      currentEnabled = stream.enabled !== false;
      if (pause) pause.textContent = currentEnabled ? "Pause this stream" : "Resume this stream";
      fill(
        inView,
        stream.tracks.length
          ? stream.tracks.map((t) =>
              h(
                "li",
                { class: t.person_id ? "known" : "unknown" },
                t.person_id ? h("a", { href: `#/people/${encodeURIComponent(t.person_id)}` }, t.name) : "Someone unknown",
              ),
            )
          : h("li", { class: "empty" }, "Nobody in view."),
      );
      fill(
        status,
        `${stream.name}: `,
        h("span", { class: "state" }, stream.state),
        ` · ${stream.fps.toFixed(1)} fps · lag ${stream.lag_seconds.toFixed(1)} s · ${stream.frames} frames`,
        stream.dropped_frames ? ` · ${stream.dropped_frames} dropped` : "",
        stream.error ? ` · ${stream.error}` : "",
      );
      let url = null;
      try {
        url = await api.imageUrl(`/api/v1/streams/${encodeURIComponent(id)}/frame`, ctx.signal);
      } catch (err) {
        if (err.status !== 404) throw err;
      }
      if (id !== current) {
        if (url) URL.revokeObjectURL(url);
        return;
      }
      if (url) {
        // The server draws the tracks' boxes and names into the frame itself (in step with that frame; the
        // status above may be a moment newer), so the picture is shown as it comes.
        const img = h("img", { src: url, alt: `Latest frame of ${stream.name}, ${stream.tracks.length} in view` });
        await img.decode().catch(() => {});
        if (id !== current) return URL.revokeObjectURL(url);
        screen.replaceChildren(h("figure", { class: "photo" }, img));
        // Only the frame on screen keeps its object URL.
        if (shown) URL.revokeObjectURL(shown);
        shown = url;
      } else {
        fill(screen, h("p", { class: "empty" }, "No picture yet."));
      }
      message.clear();
    } catch (err) {
      if (err.name === "AbortError") return;
      message.show(err.text);
    }
    if (id === current && !ctx.signal.aborted) timer = setTimeout(poll, POLL_MS);
  }

  function watch(id) {
    current = id;
    clearTimeout(timer);
    loadStreams().catch(() => {});
    poll();
  }
  ctx.cleanup(() => {
    clearTimeout(timer);
    if (shown) URL.revokeObjectURL(shown);
  });

  async function listen() {
    // Reconnects with a pause while the view is open (a server restart, a proxy timeout), from the last event
    // seen: the server replays what came meanwhile, or says with a "gap" event that it no longer has it all.
    const resume = {};
    while (!ctx.signal.aborted) {
      try {
        await api.events("/api/v1/events", null, (type, body) => {
          feed.prepend(h("li", {}, h("time", { datetime: body.at || "" }, when(body.at || new Date().toISOString())), " ", describeEvent(type, body)));
          while (feed.children.length > FEED_MAX) feed.lastChild.remove();
        }, ctx.signal, resume);
      } catch (err) {
        if (err.name === "AbortError" || ctx.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }

  let pause = null; // admins: pause (disable) or resume (enable) the stream on screen
  const side = () => h("section", {}, h("h2", {}, "In view"), inView, h("h2", {}, "Events"), feed);
  const sections = [h("h1", {}, "Live"), message, picker];
  if (isAdmin) {
    const source = h("input", { type: "text", required: true, maxLength: 2000, placeholder: "rtsp://camera/stream, a file path, or 0" });
    const name = h("input", { type: "text", required: true, maxLength: 200 });
    const loop = h("input", { type: "checkbox", id: "stream-loop" });
    const add = h("button", { type: "submit", class: "primary" }, "Add stream");
    const note = messageArea();
    const form = h(
      "details",
      { class: "card" },
      h("summary", {}, "Add a stream"),
      h("form", {}, field("Name", name), field("Source", source), h("div", { class: "field check" }, loop, h("label", { for: "stream-loop" }, "Play a file again when it ends")), note, h("div", { class: "actions" }, add)),
    );
    form.querySelector("form").addEventListener("submit", async (event) => {
      event.preventDefault();
      await busy(add, note, async () => {
        const created = await api.post("/api/v1/streams", { name: name.value.trim(), source: source.value.trim(), loop: loop.checked });
        form.open = false;
        watch(created.id);
      });
    });
    const remove = h("button", { type: "button", class: "link danger" }, "Remove this stream");
    remove.addEventListener("click", async () => {
      if (!current) return;
      if (!(await confirmDialog("Remove this stream?", "It stops at once; its history stays.", "Remove"))) return;
      await busy(remove, message, async () => {
        await api.del(`/api/v1/streams/${encodeURIComponent(current)}`);
        current = null;
        fill(screen, h("p", { class: "empty" }, "Choose a stream."));
        status.replaceChildren();
        await loadStreams();
      });
    });
    pause = h("button", { type: "button", class: "link" }, "Pause this stream");
    pause.addEventListener("click", async () => {
      if (!current) return;
      const id = current;
      await busy(pause, message, async () => {
        const updated = await api.patch(`/api/v1/streams/${encodeURIComponent(id)}`, { enabled: !currentEnabled });
        if (id !== current) return;
        currentEnabled = updated.enabled !== false;
        pause.textContent = currentEnabled ? "Pause this stream" : "Resume this stream";
        await loadStreams();
      });
    });
    sections.push(form, h("div", { class: "live" }, h("div", {}, status, screen, h("div", { class: "actions" }, pause, remove)), side()));
  } else {
    sections.push(h("div", { class: "live" }, h("div", {}, status, screen), side()));
  }
  ctx.main.append(...sections);
  if (features.events) listen();
  else feed.append(h("li", { class: "empty" }, "This server sends no events."));
  await loadStreams();
}
