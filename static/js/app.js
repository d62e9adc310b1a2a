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
