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
