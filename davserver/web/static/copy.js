// Copy buttons of the connect page: copy the command next to the button and say so.
"use strict";
function copyText(text) {
  // navigator.clipboard exists only in secure contexts (HTTPS, localhost); over plain
  // HTTP the selection-and-execCommand fallback still works in current browsers.
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  const done = document.execCommand("copy");
  area.remove();
  return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}
document.addEventListener("click", (e) => {
  const button = e.target.closest("button.copy");
  if (!button) return;
  const code = button.parentElement.querySelector("code");
  copyText(code.textContent).then(
    () => { button.textContent = "Copied"; button.classList.add("done"); },
    () => { button.textContent = "Select and copy"; });
  setTimeout(() => { button.textContent = "Copy"; button.classList.remove("done"); }, 2000);
});
