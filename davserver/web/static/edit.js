// Rename, delete and new folder on the pages of edit links (POST <base>/edit).
"use strict";
const base = document.body.dataset.base;
async function edit(body) {
  const r = await fetch(base + "/edit", {method: "POST", headers: {
    "Content-Type": "application/json", "X-Davserver-Edit": "1"},
    body: JSON.stringify(body)});
  if (r.ok) return location.reload();
  const answer = await r.json().catch(() => ({}));
  alert("Could not " + body.op + ": " + (answer.error || r.status + " " + r.statusText));
}
document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-op]");
  if (!b) return;
  const row = b.closest("tr"), path = row.dataset.path, name = row.dataset.name;
  if (b.dataset.op === "rename") {
    const n = prompt("New name for " + name, name);
    if (n && n !== name) edit({op: "rename", path: path, name: n});
  } else if (b.dataset.op === "delete" && confirm("Delete " + name + "?")) {
    edit({op: "delete", path: path});
  }
});
const form = document.getElementById("mkdir");
if (form) form.addEventListener("submit", (e) => {
  e.preventDefault();
  const n = form.elements.name.value.trim();
  if (n) edit({op: "mkdir", path: form.dataset.path, name: n});
});
