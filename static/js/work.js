// The work page: starts the player, autosaves the draft, keeps the lease alive, enables
// "Submit" once the server says the whole clip was heard, and runs the skip / report
// dialogs. Keyboard shortcuts of the page (the player's own are in player.js):
// Ctrl+S saves the draft now, Ctrl+Enter submits (when allowed).
import { startPlayer } from "./player.js";

const DRAFT_DELAY_MS = 1500;
const RENEW_EVERY_MS = 2 * 60 * 1000;
const FINISH_WAIT_MS = 2000;

const workspace = document.getElementById("workspace");
const form = document.getElementById("submit-form");
const transcript = document.getElementById("transcript");
const submitButton = document.getElementById("submit");
const submitHint = document.getElementById("submit-hint");
const draftStatus = document.getElementById("draft-status");
const leaseStatus = document.getElementById("lease-status");
const leaseEnded = document.getElementById("lease-ended");

let fullyHeard = workspace.dataset.fullyHeard === "true";
let leaseLive = true;
let submitting = false;
let draftTimer = null;
let savedText = transcript.value;

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

class Refused extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function postJson(url, body, options = {}) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: JSON.stringify(body || {}),
    ...options,
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (payload.error && payload.error.message) || `The server refused (${response.status}).`;
    throw new Refused(response.status, message);
  }
  return payload;
}

function clock(iso) {
  const moment = new Date(iso);
  return `${String(moment.getUTCHours()).padStart(2, "0")}:${String(moment.getUTCMinutes()).padStart(2, "0")}`;
}

function say(element, message, kind = "info") {
  element.textContent = message;
  element.dataset.kind = kind;
}

// --- the lease -------------------------------------------------------------------------

function endLease() {
  if (!leaseLive) return;
  leaseLive = false;
  clearTimeout(draftTimer);
  workspace.classList.add("ended");
  leaseEnded.hidden = false;
  say(leaseStatus, "Your lease has ended", "warn");
  for (const control of workspace.querySelectorAll("button, textarea")) control.disabled = true;
  for (const opener of document.querySelectorAll("[data-opens]")) opener.disabled = true;
}

function refused(error) {
  return error instanceof Refused && (error.status === 403 || error.status === 401);
}

async function renew() {
  if (!leaseLive) return;
  try {
    const answer = await postJson(workspace.dataset.renewUrl);
    say(leaseStatus, `Yours until ${clock(answer.expires_at)} UTC`);
  } catch (error) {
    if (refused(error)) endLease();
    else say(leaseStatus, "Could not renew the lease; retrying…", "warn");
  }
}

// --- the draft -------------------------------------------------------------------------

async function saveDraft() {
  clearTimeout(draftTimer);
  if (!leaseLive || submitting || transcript.value === savedText) return;
  const text = transcript.value;
  say(draftStatus, "Saving…");
  try {
    const answer = await postJson(workspace.dataset.draftUrl, { transcript: text });
    savedText = text;
    say(draftStatus, `Draft saved ${new Date(answer.saved_at).toISOString().slice(11, 19)} UTC`);
  } catch (error) {
    if (refused(error)) {
      endLease();
      say(draftStatus, "Not saved: the lease has ended.", "error");
    } else {
      say(draftStatus, `Draft not saved: ${error.message}`, "error");
    }
  }
}

function scheduleDraft() {
  clearTimeout(draftTimer);
  say(draftStatus, "Unsaved changes");
  draftTimer = setTimeout(saveDraft, DRAFT_DELAY_MS);
}

// --- submitting ------------------------------------------------------------------------

function showListening(detail) {
  if (detail && detail.fully_heard) fullyHeard = true;
  if (!leaseLive) return;
  submitButton.disabled = !fullyHeard || submitting;
  if (fullyHeard) {
    say(submitHint, "You have heard the whole clip.", "ok");
  } else if (detail && typeof detail.heard_share === "number") {
    say(submitHint, `Listen to the whole clip to submit (${Math.round(detail.heard_share * 100)}% heard).`);
  }
}

// Each of the page's forms ends the lease. The player's last report goes first, while the
// lease is live; a report that does not answer within FINISH_WAIT_MS does not hold the post up.
function postAfterFinalReport(target) {
  const waited = new Promise((resolve) => setTimeout(resolve, FINISH_WAIT_MS));
  // Through the prototype: the submit button's id, "submit", shadows the form's own method.
  const post = () => HTMLFormElement.prototype.submit.call(target);
  Promise.race([player.then((loaded) => loaded.finish()), waited]).finally(post);
}

function submitNow() {
  if (!submitButton.disabled) form.requestSubmit(submitButton);
}

form.addEventListener("submit", (event) => {
  if (!fullyHeard || !leaseLive || submitting) {
    event.preventDefault();
    return;
  }
  // One click, one request: the server is idempotent anyway, the button says it is busy.
  submitting = true;
  clearTimeout(draftTimer);
  submitButton.disabled = true;
  submitButton.textContent = "Submitting…";
  event.preventDefault();
  postAfterFinalReport(form);
});

// --- dialogs ---------------------------------------------------------------------------

for (const opener of document.querySelectorAll("[data-opens]")) {
  opener.addEventListener("click", () => document.getElementById(opener.dataset.opens).showModal());
}
for (const closer of document.querySelectorAll("[data-closes]")) {
  closer.addEventListener("click", () => document.getElementById(closer.dataset.closes).close());
}
for (const dialog of document.querySelectorAll("dialog")) {
  // Esc closes the dialog; it must not also play or pause the clip behind it.
  dialog.addEventListener("keydown", (event) => event.stopPropagation());
  dialog.addEventListener("submit", (event) => {
    if (submitting) {
      event.preventDefault();
      return;
    }
    submitting = true;
    clearTimeout(draftTimer);
    event.preventDefault();
    postAfterFinalReport(event.target);
  });
}

// --- wiring ----------------------------------------------------------------------------

transcript.addEventListener("input", scheduleDraft);
workspace.addEventListener("listening", (event) => showListening(event.detail));
document.addEventListener("keydown", (event) => {
  const ctrl = event.ctrlKey || event.metaKey;
  if (!ctrl || document.querySelector("dialog[open]")) return;
  if (event.key === "s" || event.key === "S") {
    event.preventDefault();
    saveDraft();
  } else if (event.key === "Enter") {
    event.preventDefault();
    submitNow();
  }
});
window.addEventListener("pagehide", () => {
  if (leaseLive && !submitting && transcript.value !== savedText) {
    postJson(workspace.dataset.draftUrl, { transcript: transcript.value }, { keepalive: true }).catch(() => {});
  }
});
setInterval(renew, RENEW_EVERY_MS);
showListening(null);
const player = startPlayer(workspace);
