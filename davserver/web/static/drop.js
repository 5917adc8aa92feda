// The drop page: files chosen or dropped (folders too) are sent with TUS, one after
// the other, in PIECE-byte PATCHes, resuming from the server's offset after a failure.
"use strict";
const box = document.getElementById("drop");
const PIECE = Number(box.dataset.piece), RETRIES = Number(box.dataset.retries);
const endpoint = box.dataset.endpoint, folder = box.dataset.folder;
const input = document.getElementById("drop-input");
const zone = box.querySelector(".zone");
const list = document.getElementById("drop-list");
const summary = document.getElementById("drop-summary");
const queue = [];
let running = false, sent = 0, total = 0;

const b64 = (text) => btoa(Array.from(new TextEncoder().encode(text),
  (b) => String.fromCharCode(b)).join(""));
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
function size(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
function request(method, url, headers, body, progress) {
  return new Promise((done, fail) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("Tus-Resumable", "1.0.0");
    for (const [key, value] of Object.entries(headers)) xhr.setRequestHeader(key, value);
    if (progress) xhr.upload.onprogress = (e) => progress(e.loaded);
    xhr.onload = () => done(xhr);
    xhr.onerror = xhr.ontimeout = xhr.onabort = () => fail(new Error("connection lost"));
    xhr.send(body === undefined ? null : body);
  });
}
function reason(xhr) {
  const known = {404: "this link does not accept files any more",
    413: "the file is too large", 507: "not enough space left in the folder"};
  return known[xhr.status] || "the server answered " + xhr.status;
}
const permanent = (xhr) => xhr.status === 507 || (xhr.status < 500 && xhr.status !== 409);
const finalName = (xhr, file) => {
  const name = xhr.getResponseHeader("X-Davserver-Name");
  return name ? decodeURIComponent(name) : file.name;
};

function show(item, done) {
  const percent = item.file.size ? Math.floor(done * 100 / item.file.size) : 100;
  item.bar.value = Math.min(percent, 100);
  item.state.textContent = "Sending… " + item.bar.value + " %";
}
function add(file, path) {
  const li = document.createElement("li");
  const top = document.createElement("div"), name = document.createElement("span");
  const bytes = document.createElement("span"), bar = document.createElement("progress");
  const state = document.createElement("div");
  top.className = "top"; name.className = "file"; state.className = "state";
  name.textContent = path || file.name; bytes.textContent = size(file.size);
  bar.max = 100; bar.value = 0;
  bar.setAttribute("aria-label", "Progress of " + (path || file.name));
  state.textContent = "Waiting";
  top.append(name, bytes); li.append(top, bar, state); list.append(li);
  queue.push({file, path, li, bar, state, url: null});
  total += 1;
}

async function create(item) {
  let meta = "filename " + b64(item.file.name);
  const rel = [folder, item.path].filter(Boolean).join("/");
  if (rel) meta += ",relativePath " + b64(item.path ? rel : rel + "/" + item.file.name);
  const xhr = await request("POST", endpoint,
    {"Upload-Length": String(item.file.size), "Upload-Metadata": meta});
  if (xhr.status !== 201) throw new Error(reason(xhr));
  item.url = xhr.getResponseHeader("Location");
}
async function head(item) {
  let xhr;
  try { xhr = await request("HEAD", item.url, {}); } catch (e) { return null; }
  if (xhr.status === 200) return xhr;
  if (permanent(xhr)) throw new Error(reason(xhr));
  return null;
}
async function patch(item, start) {
  const end = Math.min(start + PIECE, item.file.size);
  const headers = {"Content-Type": "application/offset+octet-stream",
    "Upload-Offset": String(start)};
  try {
    return await request("PATCH", item.url, headers, item.file.slice(start, end),
      (n) => show(item, start + n));
  } catch (e) { return null; }
}
// Sends the file from the server's offset (null: ask it with HEAD first); returns
// the name it was stored under.
async function send(item) {
  if (!item.url) await create(item);
  let offset = item.tried ? null : 0, failures = 0;
  item.tried = true;
  for (;;) {
    if (offset === null) {
      const answer = await head(item);
      if (answer) {
        offset = Number(answer.getResponseHeader("Upload-Offset"));
        if (offset >= item.file.size) return finalName(answer, item.file);
      }
    }
    let conflict = false;
    if (offset !== null) {
      const xhr = await patch(item, offset);
      if (xhr && xhr.status === 204) {
        offset = Number(xhr.getResponseHeader("Upload-Offset"));
        failures = 0; show(item, offset);
        if (offset >= item.file.size) return finalName(xhr, item.file);
        continue;
      }
      if (xhr && permanent(xhr)) throw new Error(reason(xhr));
      conflict = Boolean(xhr && xhr.status === 409);
      offset = null;
    }
    failures += 1;
    if (failures > RETRIES) throw new Error("the connection keeps failing");
    if (!conflict) {
      item.state.textContent = "Connection trouble, trying again…";
      await sleep(Math.min(500 * 2 ** failures, 15000));
    }
  }
}
async function run() {
  if (running) return;
  running = true;
  while (queue.length) {
    const item = queue.shift();
    item.li.className = ""; item.state.textContent = "Sending… 0 %";
    try {
      const name = await send(item);
      item.bar.value = 100; item.li.className = "done"; sent += 1;
      item.state.textContent = name === item.file.name ? "Sent" : "Sent as “" + name + "”";
    } catch (e) {
      item.li.className = "failed"; item.state.textContent = "Not sent: " + e.message + " ";
      const again = document.createElement("button");
      again.type = "button"; again.textContent = "Try again";
      again.addEventListener("click", () => { again.remove(); queue.push(item); run(); });
      item.state.append(again);
    }
    summary.textContent = sent + " of " + total + " sent";
  }
  running = false;
}

async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((ok, ko) => entry.file(ok, ko));
    out.push([file, prefix + file.name]);
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((ok, ko) => reader.readEntries(ok, ko));
    if (!batch.length) return;
    for (const child of batch) await walk(child, prefix + entry.name + "/", out);
  }
}
async function dropped(data) {
  const entries = Array.from(data.items || [], (i) => i.webkitGetAsEntry && i.webkitGetAsEntry());
  if (!entries.length || entries.some((e) => !e)) {
    for (const file of data.files) add(file, "");
  } else {
    const found = [];
    for (const entry of entries) await walk(entry, "", found);
    for (const [file, path] of found) add(file, path.includes("/") ? path : "");
  }
  run();
}
input.addEventListener("change", () => {
  for (const file of input.files) add(file, "");
  input.value = "";
  run();
});
for (const type of ["dragenter", "dragover"]) {
  zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
}
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (e) => {
  e.preventDefault(); zone.classList.remove("over"); dropped(e.dataTransfer);
});
// A file dropped beside the zone must not make the browser leave the page.
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => e.preventDefault());
