// Small behaviours the CSP would otherwise forbid inline: colour swatches from data attributes.
function paintSwatches(root) {
  for (const element of root.querySelectorAll("[data-colour]")) {
    if (/^#[0-9a-fA-F]{3,8}$/.test(element.dataset.colour)) {
      element.style.backgroundColor = element.dataset.colour;
    }
  }
}
document.addEventListener("DOMContentLoaded", () => paintSwatches(document));
document.addEventListener("htmx:load", (event) => paintSwatches(event.target));

// Ctrl/Cmd+Enter sends the form a textarea belongs to; Esc closes the edit it is in.
document.addEventListener("keydown", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLTextAreaElement) && !(field instanceof HTMLInputElement)) return;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && field.form) {
    event.preventDefault();
    // As with Enter in a field: a form whose default button is disabled is not sent.
    const send = field.form.querySelector("button[type=submit], input[type=submit]");
    if (send && send.disabled) return;
    field.form.requestSubmit();
  } else if (event.key === "Escape" && field.hasAttribute("data-cancel-on-escape")) {
    field.value = field.defaultValue;
    const details = field.closest("details");
    if (details) details.open = false;
  }
});

// Copy buttons: data-copy names the element whose text is copied.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.innerText);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
});

// <details> whose content loads when first opened: <div data-load="URL"> inside is replaced by
// the fragment at URL. One listener on the document (toggle does not bubble, so capture it),
// installed before anyone can click, so an early open is never missed.
document.addEventListener(
  "toggle",
  (event) => {
    const details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.open) return;
    const slot = details.querySelector(":scope > [data-load]");
    if (!slot || !window.htmx) return;
    const url = slot.dataset.load;
    slot.removeAttribute("data-load");
    window.htmx.ajax("GET", url, { target: slot, swap: "outerHTML" });
  },
  true,
);

// After a send the page shows what was just started (marked data-scroll-here by the server),
// not its top. htmx scrolls a boosted page to its top right after htmx:afterSettle, so this
// waits for the next tick.
function scrollToStarted(root) {
  const target = root.querySelector ? root.querySelector("[data-scroll-here]") : null;
  if (!target) return;
  target.removeAttribute("data-scroll-here"); // once: later swaps (live text) must not jump
  target.scrollIntoView({ block: "start" });
}
document.addEventListener("DOMContentLoaded", () => scrollToStarted(document));
document.addEventListener("htmx:afterSettle", () => setTimeout(() => scrollToStarted(document), 0));

// The board. A card sent on the page's live stream (into #board-inbox) replaces its old self,
// in the column its task is now in (data-status); the columns' counts follow.
function placeCard(card) {
  const list = document.getElementById(`column-${card.dataset.status}-tasks`);
  const old = document.querySelector(`.board #${card.id}`);
  if (!list) {
    card.remove();
    return;
  }
  if (old && old.parentElement === list) {
    old.replaceWith(card);
    return;
  }
  if (old) {
    bumpCount(old.dataset.status, -1);
    old.remove();
  }
  list.prepend(card);
  bumpCount(card.dataset.status, 1);
}
function bumpCount(status, by) {
  const count = document.getElementById(`column-${status}-count`);
  if (count) count.textContent = String(Math.max(0, Number(count.textContent) + by));
}
document.addEventListener("htmx:sseMessage", (event) => {
  const inbox = event.target;
  if (!(inbox instanceof HTMLElement) || inbox.id !== "board-inbox") return;
  for (const card of [...inbox.querySelectorAll(":scope > .task-card")]) {
    placeCard(card);
    paintSwatches(card);
  }
});

// Drag and drop: a card dropped on another column posts its own Move form with that column
// (the form stays for keyboards).
document.addEventListener("dragstart", (event) => {
  const card = event.target instanceof Element ? event.target.closest(".task-card[draggable]") : null;
  if (!card || !event.dataTransfer) return;
  event.dataTransfer.setData("text/x-switchboard-card", card.id);
  event.dataTransfer.effectAllowed = "move";
  card.classList.add("dragging");
});
document.addEventListener("dragend", (event) => {
  if (event.target instanceof Element) event.target.classList.remove("dragging");
  for (const column of document.querySelectorAll(".board-column.drop-here")) column.classList.remove("drop-here");
});
function dropColumn(event) {
  if (!(event.target instanceof Element)) return null;
  const column = event.target.closest("[data-droppable] .board-column");
  const dragging = event.dataTransfer && event.dataTransfer.types.includes("text/x-switchboard-card");
  return column && dragging ? column : null;
}
document.addEventListener("dragover", (event) => {
  const column = dropColumn(event);
  if (!column) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "move";
  column.classList.add("drop-here");
});
document.addEventListener("dragleave", (event) => {
  const column = dropColumn(event);
  if (column && !column.contains(event.relatedTarget)) column.classList.remove("drop-here");
});
document.addEventListener("drop", (event) => {
  const column = dropColumn(event);
  if (!column) return;
  event.preventDefault();
  column.classList.remove("drop-here");
  const card = document.getElementById(event.dataTransfer.getData("text/x-switchboard-card"));
  const status = column.id.replace(/^column-/, "");
  const select = card ? card.querySelector(".move-form select[name=status]") : null;
  if (!select || select.value === status) return;
  select.value = status;
  select.form.requestSubmit();
});

// Every refused form answers where it was sent. A 4xx answer is the page again with the reason
// (htmx swaps it in, see base.html); where the server could not put the reason next to the form
// or keep what was typed in it, this does: the same form (same action, same place among forms
// with that action) gets back what was typed (never a password), its <details> open, and the
// page's message moves into it, scrolled into view.
// What a form sent travels with its own request (polls and loads run meanwhile).
document.addEventListener("htmx:beforeRequest", (event) => {
  const form = event.detail.elt instanceof HTMLFormElement ? event.detail.elt : null;
  if (!form || !event.detail.xhr || (form.getAttribute("method") || "get").toLowerCase() !== "post") return;
  const action = form.getAttribute("action");
  const twins = [...document.querySelectorAll("form[action]")].filter((f) => f.getAttribute("action") === action);
  const typed = [];
  for (const field of form.elements) {
    if (!field.name || field.disabled || ["hidden", "password", "file", "submit", "button"].includes(field.type)) continue;
    if ((field.type === "checkbox" || field.type === "radio") && !field.checked) continue;
    typed.push([field.name, field.value, field.type]);
  }
  event.detail.xhr.switchboardSubmitted = { action, index: twins.indexOf(form), typed };
});
function restoreForm(form, typed) {
  const seen = new Map();
  for (const field of form.elements) {
    if (!field.name || ["hidden", "password", "file", "submit", "button"].includes(field.type)) continue;
    const values = typed.filter(([name]) => name === field.name);
    if (field.type === "checkbox" || field.type === "radio") {
      field.checked = values.some(([, value]) => value === field.value);
    } else {
      const n = seen.get(field.name) || 0;
      seen.set(field.name, n + 1);
      if (n < values.length) field.value = values[n][1];
    }
  }
}
// On the swap itself, not after the settle delay: a person (or a test) may already be changing
// the new form by then, and what they chose must not be overwritten by what was refused.
document.addEventListener("htmx:afterSwap", (event) => {
  const xhr = event.detail.xhr;
  const submitted = xhr ? xhr.switchboardSubmitted : null;
  if (!submitted || xhr.status < 400 || xhr.status >= 500) return;
  xhr.switchboardSubmitted = null; // once: afterSwap may fire on more than one element
  const twins = [...document.querySelectorAll("form[action]")].filter((f) => f.getAttribute("action") === submitted.action);
  const form = twins[submitted.index] || twins[0];
  if (!form) return;
  restoreForm(form, submitted.typed);
  for (let details = form.closest("details"); details; details = details.parentElement.closest("details")) details.open = true;
  let message = form.querySelector(".error[role=alert]");
  if (!message) {
    message = document.getElementById("page-error") || document.querySelector(".error[role=alert]");
    if (!message) return;
    message.classList.remove("panel");
    const submit = form.querySelector("button[type=submit], button:not([type])");
    if (submit && submit.parentElement === form) form.insertBefore(message, submit);
    else form.append(message);
  }
  // Scrolled to once htmx has settled (it scrolls a boosted page to its top then).
  document.addEventListener(
    "htmx:afterSettle",
    () => setTimeout(() => message.scrollIntoView({ block: "center" }), 0),
    { once: true },
  );
});
