// Webcam snapshots (getUserMedia): a preview, a "Take photo" button, and the snapshot as a JPEG File.
import { h, messageArea } from "./dom.js";

let shots = 0;

// onPhoto(file) gets each snapshot. The camera stops when the panel is closed or the view changes (ctx.cleanup).
export function cameraPanel(ctx, onPhoto, { label = "Use the webcam" } = {}) {
  const video = h("video", { autoplay: true, muted: true, playsInline: true, class: "camera-preview" });
  const message = messageArea();
  let stream = null;
  const take = h("button", { type: "button", class: "primary", hidden: true, onclick: snap }, "Take photo");
  const stop = h("button", { type: "button", hidden: true, onclick: close }, "Close camera");
  const start = h("button", { type: "button", onclick: open }, label);
  const panel = h("div", { class: "camera" }, h("div", { class: "row" }, start, take, stop), message, video);
  video.hidden = true;

  async function open() {
    message.clear();
    if (!navigator.mediaDevices?.getUserMedia) {
      message.show("This browser offers no camera here (the page must be opened over HTTPS or on localhost).");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 } }, audio: false });
    } catch (err) {
      const denied = err.name === "NotAllowedError" || err.name === "SecurityError";
      message.show(denied ? "Camera access was refused. Allow it in the browser's site settings." : "No camera was found.");
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    start.hidden = true;
    take.hidden = false;
    stop.hidden = false;
    take.focus();
  }

  function close() {
    for (const track of stream?.getTracks() ?? []) track.stop();
    stream = null;
    video.srcObject = null;
    video.hidden = true;
    start.hidden = false;
    take.hidden = true;
    stop.hidden = true;
  }

  async function snap() {
    if (!video.videoWidth) return;
    const canvas = h("canvas", { width: video.videoWidth, height: video.videoHeight });
    canvas.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    shots += 1;
    onPhoto(new File([blob], `webcam-${shots}.jpg`, { type: "image/jpeg" }));
  }

  ctx.cleanup(close);
  return panel;
}
