// Atelier's pages: a model's playground (/models/{id}) and the account page (/account). Plain modern JavaScript,
// no build step. Everything goes through the public API with the visitor's key, which is kept in this browser's
// local storage and sent only to this server (relative URLs, same origin).

const KEY_STORAGE = "atelier.apiKey";
const $ = (selector) => document.querySelector(selector);

function apiKey() {
  return ($("#api-key")?.value ?? "").trim();
}

function authHeaders() {
  return { Authorization: `Bearer ${apiKey()}` };
}

/** The key shown in code samples: enough to recognise it, never enough to use it. */
function maskedKey() {
  const key = apiKey();
  return key ? `${key.slice(0, 8)}••••••••` : "YOUR_API_KEY";
}

function setupKeyField(onChange) {
  const input = $("#api-key");
  if (!input) return;
  input.value = localStorage.getItem(KEY_STORAGE) ?? "";
  input.addEventListener("input", () => {
    localStorage.setItem(KEY_STORAGE, input.value.trim());
    showError("api_key", "");
    onChange?.();
  });
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(param, message) {
  const target = document.getElementById(`error-${param}`);
  const box = target ?? $("#error-general");
  if (!box) return;
  box.textContent = message;
  const input = document.querySelector(`[data-param="${CSS.escape(param)}"] :is(input, select, textarea)`);
  if (input) {
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

function clearErrors() {
  for (const box of document.querySelectorAll(".error")) box.textContent = "";
  for (const input of document.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function money(minorUnits, currency) {
  return new Intl.NumberFormat("en-US", { style: "currency", currency }).format(minorUnits / 100);
}

// ---------------------------------------------------------------------------------------------------------------
// The model page: a form made from the catalog's parameter definitions.

const SKIP = new Set(["model_id", "api_key"]);

function fieldFor(p) {
  const id = `field-${p.name}`;
  const help = p.description ? el("p", { class: "help", id: `help-${p.name}`, text: p.description }) : "";
  const error = el("p", { class: "error", id: `error-${p.name}`, role: "alert" });
  const describedBy = [p.description ? `help-${p.name}` : null, `error-${p.name}`].filter(Boolean).join(" ");
  const label = el("label", { for: id, text: p.required ? `${p.name} (required)` : p.name });
  let input;
  switch (p.kind) {
    case "string":
      input = p.name === "prompt"
        ? el("textarea", { id, name: p.name, rows: 4, maxlength: p.max_length, required: p.required })
        : el("input", { id, name: p.name, type: "text", maxlength: p.max_length, required: p.required });
      if (typeof p.default === "string") input.value = p.default;
      break;
    case "integer":
    case "number":
      input = el("input", { id, name: p.name, type: "number", inputmode: p.kind === "integer" ? "numeric" : "decimal",
                            min: p.minimum, max: p.maximum, step: p.kind === "integer" ? 1 : "any" });
      if (typeof p.default === "number") input.value = String(p.default);
      break;
    case "boolean":
      input = el("input", { id, name: p.name, type: "checkbox" });
      input.checked = p.default === true;
      return el("div", { class: "field checkbox", "data-param": p.name, "data-kind": p.kind },
                input, label, help, error);
    case "choice":
      input = el("select", { id, name: p.name });
      for (const choice of p.choices ?? []) input.append(el("option", { value: choice, text: choice }));
      input.value = p.default !== undefined ? String(p.default) : (p.choices ?? [""])[0];
      break;
    case "seed":
      input = el("input", { id, name: p.name, type: "text", inputmode: "numeric", placeholder: "random", autocomplete: "off" });
      break;
    case "file":
      return fileField(p, id, label, help, error, describedBy);
    case "lora":
      // A LoRA by address; its strength is the parameter after it in the catalog (lora_scale, extra_lora_scale).
      input = el("input", { id, name: p.name, type: "text", inputmode: "url", autocomplete: "off", spellcheck: "false",
                            placeholder: "https://…/style.safetensors or huggingface.co/OWNER/REPO/FILE.safetensors" });
      break;
    case "lora_list":
      input = el("textarea", { id, name: p.name, rows: 2, spellcheck: "false",
                               placeholder: '[{"path": "https://…/style.safetensors", "scale": 0.8}]' });
      break;
    default:
      input = el("input", { id, name: p.name, type: "text" });
  }
  input.setAttribute("aria-describedby", describedBy);
  return el("div", { class: "field", "data-param": p.name, "data-kind": p.kind }, label, input, help, error);
}

/** A file picker that also takes a dropped image, with a thumbnail and a way to clear it. */
function fileField(p, id, label, help, error, describedBy) {
  const input = el("input", { id, name: p.name, type: "file", accept: "image/png,image/jpeg,image/webp",
                              "aria-describedby": describedBy });
  const preview = el("img", { class: "thumb", alt: "", hidden: true });
  const clear = el("button", { type: "button", class: "secondary", hidden: true, text: `Clear ${p.name}` });
  const zone = el("div", { class: "drop", "data-drop": p.name }, input,
                  el("span", { class: "drop-hint", text: "or drop an image here" }), preview, clear);
  const field = el("div", { class: "field", "data-param": p.name, "data-kind": "file" }, label, zone, help, error);
  field.chosen = null;
  const choose = (file) => {
    field.chosen = file;
    if (file) {
      preview.src = URL.createObjectURL(file);
      preview.alt = `Chosen ${p.name}: ${file.name}`;
    }
    preview.hidden = !file;
    clear.hidden = !file;
    if (!file) input.value = "";
    updateCode();
  };
  input.addEventListener("change", () => choose(input.files?.[0] ?? null));
  clear.addEventListener("click", () => choose(null));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer?.files?.[0];
    if (file) choose(file);
  });
  return field;
}

/** The parameters the form would send, in catalog order: [name, value] where a file value is a File. */
function formValues(model) {
  const values = [["model_id", model.id]];
  const custom = $("#field-aspect_ratio")?.value === "custom";
  for (const field of document.querySelectorAll("#fields .field")) {
    const name = field.dataset.param;
    if (field.hidden || ((name === "width" || name === "height") && !custom)) continue;
    const input = field.querySelector("input, select, textarea");
    switch (field.dataset.kind) {
      case "boolean": values.push([name, input.checked ? "true" : "false"]); break;
      case "file": if (field.chosen) values.push([name, field.chosen]); break;
      default: if (input.value.trim() !== "") values.push([name, input.value]);
    }
  }
  return values;
}

function playground() {
  const model = JSON.parse($("#model-data").textContent);
  const fields = $("#fields");
  for (const p of model.parameters) if (!SKIP.has(p.name)) fields.append(fieldFor(p));
  const ratio = $("#field-aspect_ratio");
  const syncCustom = () => {
    for (const side of ["width", "height"]) {
      const field = document.querySelector(`[data-param="${side}"]`);
      if (field) field.hidden = ratio?.value !== "custom";
    }
  };
  ratio?.addEventListener("change", syncCustom);
  syncCustom();
  setupKeyField(updateCode);
  fields.addEventListener("input", updateCode);
  fields.addEventListener("change", updateCode);
  $("#code-language").addEventListener("change", updateCode);
  setupTabs();
  $("#run-form").addEventListener("submit", (event) => { event.preventDefault(); run(model); });
  $("#cancel-button").addEventListener("click", cancel);
  window.atelierModel = model;
  updateCode();
}

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    tab.focus();
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) select(tabs[(i + step + tabs.length) % tabs.length]);
    });
  });
}

let current = null; // { id, controller }

function setStatus(text) {
  $("#status").textContent = text;
}

async function run(model) {
  clearErrors();
  if (!apiKey()) {
    showError("api_key", "Enter your API key first.");
    $("#api-key").focus();
    return;
  }
  const body = new FormData();
  for (const [name, value] of formValues(model)) body.append(name, value);
  body.append("wait", "0"); // answer at once; progress comes from the event stream
  $("#run-button").disabled = true;
  $("#images").replaceChildren();
  $("#facts").hidden = true;
  const progress = $("#progress");
  progress.hidden = true;
  progress.value = 0;
  setStatus("Sending…");
  // On a phone the output is below the form: bring it into view.
  const output = $("#output-heading");
  if (output.getBoundingClientRect().top > window.innerHeight) output.scrollIntoView({ behavior: "smooth" });
  try {
    const response = await fetch("/api/v4/run", { method: "POST", headers: authHeaders(), body });
    const text = await response.text();
    $("#json-output").textContent = pretty(text);
    let json = null;
    try { json = JSON.parse(text); } catch { /* shown as text above */ }
    if (!response.ok || !json?.success) {
      showApiError(response.status, json, text);
      setStatus("The request was refused; see the messages next to the fields.");
      return;
    }
    const id = json.data.request_id;
    const controller = new AbortController();
    current = { id, controller };
    $("#cancel-button").hidden = false;
    setStatus(`Queued as request ${id}.`);
    await follow(id, controller.signal, model);
  } catch (error) {
    if (error.name !== "AbortError") {
      showError("general", `The server could not be reached: ${error.message}`);
      setStatus("Failed.");
    }
  } finally {
    $("#run-button").disabled = false;
    $("#cancel-button").hidden = true;
    current = null;
  }
}

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

function showApiError(status, json, text) {
  const error = json?.error;
  if (status === 401) {
    showError("api_key", json?.message ?? "This key was not accepted.");
    return;
  }
  const details = error?.details?.length ? error.details : [{ param: error?.param ?? "general", message: json?.message ?? text }];
  let first = null;
  for (const d of details) {
    const known = document.getElementById(`error-${d.param}`);
    showError(known ? d.param : "general", d.message);
    first ??= document.querySelector(`[data-param="${CSS.escape(d.param)}"] :is(input, select, textarea)`);
  }
  first?.focus();
}

/** Reads the run's Server-Sent Events with fetch (EventSource cannot send the Authorization header). */
async function follow(id, signal, model) {
  const response = await fetch(`/api/v4/requests/${id}/events`, { headers: authHeaders(), signal });
  if (!response.ok) {
    showApiError(response.status, await response.json().catch(() => null), "");
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseEvent(block);
      if (event && await handle(event, id, model)) return;
    }
  }
  // The stream closed before the run ended (the server restarting, say): the run goes on; say where to find it.
  const check = await fetch(`/api/v4/check?request_id=${id}`, { headers: authHeaders() });
  const data = (await check.json().catch(() => null))?.data;
  if (data && ["succeeded", "failed", "canceled"].includes(data.status)) finish(data, model);
  else setStatus(`The progress stream closed while request ${id} was ${data?.status ?? "unknown"}; it goes on: run it again to follow it, or poll /api/v4/check.`);
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try { return { name, data: JSON.parse(data.join("\n")) }; } catch { return null; }
}

/** Returns true once the run ended. */
async function handle(event, id, model) {
  const progress = $("#progress");
  switch (event.name) {
    case "queued":
      setStatus(event.data.queue_position ? `Queued: ${event.data.queue_position} run(s) ahead.` : "Queued: starts next.");
      return false;
    case "started":
      setStatus(event.data.attempt > 1 ? `Running (attempt ${event.data.attempt}).` : "Running.");
      progress.hidden = false;
      return false;
    case "progress":
      progress.hidden = false;
      progress.max = event.data.total;
      progress.value = event.data.step;
      progress.setAttribute("aria-valuetext", `step ${event.data.step} of ${event.data.total}`);
      setStatus(`Step ${event.data.step} of ${event.data.total}`);
      return false;
    case "completed":
    case "failed":
    case "canceled": {
      const check = await fetch(`/api/v4/check?request_id=${id}`, { headers: authHeaders() });
      const text = await check.text();
      $("#json-output").textContent = pretty(text);
      let data = event.data;
      try { data = JSON.parse(text).data ?? data; } catch { /* the event's copy will do */ }
      finish(data, model);
      return true;
    }
    default:
      return false;
  }
}

function finish(data, model) {
  const progress = $("#progress");
  if (data.status !== "succeeded") {
    progress.hidden = true;
    setStatus(data.status === "canceled" ? "Canceled; nothing was charged." : `Failed: ${data.error?.message ?? "unknown error"}`);
    if (data.error?.message && data.status === "failed") showError("general", data.error.message);
    return;
  }
  progress.value = progress.max;
  const outputs = Array.isArray(data.output) ? data.output : [data.output];
  const seeds = data.seeds ?? [data.seed];
  const images = $("#images");
  outputs.forEach((url, i) => {
    const img = el("img", { src: url, width: data.width, height: data.height, class: "result",
                            alt: `Generated image ${i + 1} of ${outputs.length} for "${data.input?.prompt ?? ""}" (seed ${seeds[i] ?? data.seed})` });
    images.append(el("figure", {}, el("a", { href: url }, img), el("figcaption", { text: `Seed ${seeds[i] ?? data.seed}` })));
  });
  const seconds = data.started_at && data.completed_at
    ? (new Date(data.completed_at) - new Date(data.started_at)) / 1000
    : (data.timings?.total_ms ?? 0) / 1000;
  const price = model.price_per_image;
  const facts = $("#facts");
  facts.replaceChildren();
  const fact = (name, value, key) => facts.append(el("dt", { text: name }), el("dd", { text: value, "data-fact": key }));
  fact("Seed", seeds.join(", "), "seed");
  fact("Size", `${data.width}×${data.height}`, "size");
  fact("Time taken", `${seconds.toFixed(1)} s`, "time");
  fact("Cost", `${money(price.minor_units * outputs.length, price.currency)} (${outputs.length} × ${price.display})`, "cost");
  fact("Path", `${data.path} — ${data.path_reason}`, "path");
  facts.hidden = false;
  setStatus(`Done: ${outputs.length} image(s) in ${seconds.toFixed(1)} s.`);
}

async function cancel() {
  if (!current) return;
  const { id } = current;
  const body = new URLSearchParams({ request_id: String(id) });
  await fetch("/api/v4/cancel", { method: "POST", headers: authHeaders(), body });
}

// ---------------------------------------------------------------------------------------------------------------
// The Code tab: the same request in curl, PHP, Python and Swift, the key masked.

function updateCode() {
  const model = window.atelierModel;
  if (!model || !$("#code-output")) return;
  const values = formValues(model);
  const base = `${location.origin}/api/v4/run`;
  const key = maskedKey();
  const language = $("#code-language").value;
  $("#code-output").textContent = CODE[language](base, key, values);
}

const fileName = (file) => file.name || "image.png";
const shellQuote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
const phpQuote = (s) => `"${String(s).replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
const swiftQuote = (s) => JSON.stringify(String(s)).replace(/\\u([0-9a-fA-F]{4})/g, "\\u{$1}");

const CODE = {
  curl(base, key, values) {
    const lines = [`curl -s ${base}`, `  -H ${shellQuote(`Authorization: Bearer ${key}`)}`];
    for (const [name, value] of values) {
      lines.push(value instanceof File ? `  -F ${shellQuote(`${name}=@${fileName(value)}`)}` : `  -F ${shellQuote(`${name}=${value}`)}`);
    }
    return lines.join(" \\\n");
  },
  php(base, key, values) {
    const fields = values.map(([name, value]) => value instanceof File
      ? `        ${phpQuote(name)} => new CURLFile(${phpQuote(fileName(value))}),`
      : `        ${phpQuote(name)} => ${phpQuote(value)},`);
    return [
      "<?php",
      `$ch = curl_init(${phpQuote(base)});`,
      "curl_setopt_array($ch, [",
      "    CURLOPT_POST => true,",
      "    CURLOPT_RETURNTRANSFER => true,",
      `    CURLOPT_HTTPHEADER => [${phpQuote(`Authorization: Bearer ${key}`)}],`,
      "    CURLOPT_POSTFIELDS => [",
      ...fields,
      "    ],",
      "]);",
      "$response = json_decode(curl_exec($ch), true);",
      "echo $response['data']['output'] ?? $response['message'], PHP_EOL;",
    ].join("\n");
  },
  python(base, key, values) {
    const data = values.filter(([, v]) => !(v instanceof File)).map(([n, v]) => `    ${JSON.stringify(n)}: ${JSON.stringify(v)},`);
    const files = values.filter(([, v]) => v instanceof File).map(([n, v]) => `    ${JSON.stringify(n)}: open(${JSON.stringify(fileName(v))}, "rb"),`);
    return [
      "import requests",
      "",
      "response = requests.post(",
      `    ${JSON.stringify(base)},`,
      `    headers={"Authorization": ${JSON.stringify(`Bearer ${key}`)}},`,
      "    data={",
      ...data.map((l) => `    ${l}`),
      "    },",
      ...(files.length ? ["    files={", ...files.map((l) => `    ${l}`), "    },"] : []),
      "    timeout=120,",
      ")",
      "print(response.json())",
    ].join("\n");
  },
  swift(base, key, values) {
    // JSON body; images travel as data URIs, which the API accepts as well as uploads.
    const fields = values.map(([name, value]) => value instanceof File
      ? `    ${swiftQuote(name)}: "data:image/png;base64," + (try! Data(contentsOf: URL(fileURLWithPath: ${swiftQuote(fileName(value))}))).base64EncodedString(),`
      : `    ${swiftQuote(name)}: ${swiftQuote(value)},`);
    return [
      "import Foundation",
      "#if canImport(FoundationNetworking)",
      "import FoundationNetworking",
      "#endif",
      "",
      `var request = URLRequest(url: URL(string: ${swiftQuote(base)})!)`,
      'request.httpMethod = "POST"',
      `request.setValue(${swiftQuote(`Bearer ${key}`)}, forHTTPHeaderField: "Authorization")`,
      'request.setValue("application/json", forHTTPHeaderField: "Content-Type")',
      "let parameters: [String: String] = [",
      ...fields,
      "]",
      "request.httpBody = try JSONSerialization.data(withJSONObject: parameters)",
      "let (data, _) = try await URLSession.shared.data(for: request)",
      "print(String(decoding: data, as: UTF8.self))",
    ].join("\n");
  },
};

// ---------------------------------------------------------------------------------------------------------------
// The account page.

async function accountPage() {
  const target = $("#account");
  let timer = null;
  const load = async () => {
    clearErrors();
    if (!apiKey()) {
      target.replaceChildren(el("p", { text: "Enter your API key to see the account's balance, usage and keys." }));
      return;
    }
    const [account, usage] = await Promise.all([
      fetch("/api/v4/account", { headers: authHeaders() }),
      fetch("/api/v4/usage?limit=50", { headers: authHeaders() }),
    ]);
    const a = await account.json().catch(() => null);
    if (!account.ok) {
      showError("api_key", a?.message ?? `The server answered ${account.status}.`);
      target.replaceChildren();
      return;
    }
    const u = usage.ok ? (await usage.json()).data : { items: [], currency: a.data.currency };
    target.replaceChildren(renderAccount(a.data, u));
  };
  setupKeyField(() => { clearTimeout(timer); timer = setTimeout(load, 300); });
  await load();
}

function table(caption, headings, rows) {
  const head = el("tr", {}, ...headings.map((h) => el("th", { scope: "col", text: h })));
  const body = rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", { text: c }))));
  return el("table", {}, el("caption", { text: caption }), el("thead", {}, head), el("tbody", {}, ...body));
}

function renderAccount(a, usage) {
  const summary = el("dl", { class: "balance" },
    el("dt", { text: "Account" }), el("dd", { text: a.account, "data-fact": "account" }),
    el("dt", { text: "Balance" }), el("dd", { text: a.display.balance, "data-fact": "balance" }),
    el("dt", { text: "Held by runs in progress" }), el("dd", { text: a.display.held, "data-fact": "held" }),
    el("dt", { text: "Available" }), el("dd", { text: a.display.available, "data-fact": "available" }));
  const usageTable = table("Usage (charged runs, newest first)", ["Request", "Model", "Images", "Amount", "Charged at"],
    usage.items.map((i) => [String(i.request_id), i.model_id, String(i.images), money(i.amount, usage.currency),
                            new Date(i.charged_at).toLocaleString()]));
  usageTable.id = "usage";
  const keys = table("API keys (by prefix)", ["Prefix", "Created", "Status"],
    (a.keys ?? []).map((k) => [`${k.prefix}…`, new Date(k.created_at).toLocaleString(), k.revoked_at ? "revoked" : "active"]));
  keys.id = "keys";
  return el("div", {}, summary, usageTable, keys);
}

if ($("#model-data")) playground();
else if ($("#account")) accountPage();
