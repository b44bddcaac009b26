// The kiln playground: try two model versions side by side against this gateway, and send feedback.
// Plain browser JavaScript, no build step. Everything the server or the model returns is shown with
// textContent (or as a <select> option's text), never parsed as HTML: a completion is code, and code is text.

const KEY_STORAGE = 'kiln.playground.apiKey';
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const keyInput = /** @type {HTMLInputElement} */ ($('api-key'));
const editor = /** @type {HTMLTextAreaElement} */ ($('prompt'));
const infill = /** @type {HTMLInputElement} */ ($('infill'));
const status = $('status');
const cursorInfo = $('cursor');

/** One side of the comparison: its model choice, its output fields, its last completion. */
class Panel {
  constructor(root) {
    this.root = root;
    this.model = /** @type {HTMLSelectElement} */ (root.querySelector('select.model'));
    this.completion = root.querySelector('.completion');
    this.latency = root.querySelector('.latency');
    this.upstream = root.querySelector('.upstream');
    this.finish = root.querySelector('.finish');
    this.tokens = root.querySelector('.tokens');
    this.error = root.querySelector('.error');
    this.accept = /** @type {HTMLButtonElement} */ (root.querySelector('.accept'));
    this.reject = /** @type {HTMLButtonElement} */ (root.querySelector('.reject'));
    this.feedbackStatus = root.querySelector('.feedback-status');
    /** @type {{ id: string, text: string, at: number } | null} */
    this.last = null;
    this.accept.addEventListener('click', () => this.feedback('accepted'));
    this.reject.addEventListener('click', () => this.feedback('rejected'));
  }

  clear() {
    this.completion.textContent = '';
    for (const el of [this.latency, this.upstream, this.finish, this.tokens]) el.textContent = '…';
    this.error.textContent = '';
    this.feedbackStatus.textContent = '';
    this.accept.disabled = true;
    this.reject.disabled = true;
    this.last = null;
  }

  /** Asks this panel's model; `cursor` is where an accepted completion goes in the editor (not sent). */
  async complete(body, cursor) {
    this.clear();
    const t0 = performance.now();
    const r = await api('/v1/completions', { ...body, model: this.model.value });
    const ms = performance.now() - t0;
    this.latency.textContent = `${ms.toFixed(0)} ms`;
    this.upstream.textContent = r.headers.get('x-kiln-upstream') ?? '—';
    if (!r.ok) {
      this.finish.textContent = '—';
      this.tokens.textContent = '—';
      this.error.textContent = errorText(r);
      return;
    }
    const choice = r.body.choices?.[0];
    const text = typeof choice?.text === 'string' ? choice.text : '';
    this.completion.textContent = text;
    this.finish.textContent = String(choice?.finish_reason ?? '—');
    const u = r.body.usage;
    this.tokens.textContent = u ? `${u.prompt_tokens} in, ${u.completion_tokens} out` : '—';
    this.last = { id: String(r.body.id), text, at: cursor };
    this.accept.disabled = false;
    this.reject.disabled = false;
    this.root.dataset.completionId = this.last.id;
  }

  async feedback(outcome) {
    if (!this.last) return;
    const last = this.last;
    this.accept.disabled = true;
    this.reject.disabled = true;
    this.feedbackStatus.textContent = 'sending…';
    const r = await api('/v1/feedback', { completion_id: last.id, outcome });
    if (!r.ok) {
      this.feedbackStatus.textContent = '';
      this.error.textContent = errorText(r);
      this.accept.disabled = false;
      this.reject.disabled = false;
      return;
    }
    this.feedbackStatus.textContent = `${outcome}: ${r.body.status}`;
    // An accepted completion goes into the code where it was asked for, as an editor would insert it.
    if (outcome === 'accepted' && last.at <= editor.value.length) {
      editor.value = editor.value.slice(0, last.at) + last.text + editor.value.slice(last.at);
      const end = last.at + last.text.length;
      editor.setSelectionRange(end, end);
      showCursor();
    }
  }
}

const panels = [...document.querySelectorAll('.panel')].map((el) => new Panel(el));

/** A JSON request to the gateway with the key; never throws: network errors come back as a failed response. */
async function api(path, body) {
  const headers = { accept: 'application/json' };
  const key = keyInput.value.trim();
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    const res = await fetch(path, { method: body === undefined ? 'GET' : 'POST', headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    let parsed = null;
    try {
      parsed = await res.json();
    } catch {
      parsed = null;
    }
    return { ok: res.ok, status: res.status, headers: res.headers, body: parsed };
  } catch (e) {
    return { ok: false, status: 0, headers: new Headers(), body: { error: { message: `cannot reach the gateway: ${e instanceof Error ? e.message : String(e)}` } } };
  }
}

function errorText(r) {
  const message = r.body?.error?.message;
  return `${r.status || 'network'}: ${typeof message === 'string' ? message : 'request failed'}`;
}

/** `\n` and `\t` typed as two characters mean the control characters; `|` separates stop sequences. */
function stopSequences(text) {
  if (!text) return [];
  return text
    .split('|')
    .map((s) => s.replace(/\\n/g, '\n').replace(/\\t/g, '\t'))
    .filter((s) => s.length > 0);
}

function numberOf(id) {
  const v = /** @type {HTMLInputElement} */ ($(id)).value.trim();
  return v === '' ? undefined : Number(v);
}

function showCursor() {
  const at = editor.selectionStart;
  const after = editor.value.length - at;
  cursorInfo.textContent = infill.checked && after > 0 ? `cursor at ${at}: prompt ${at} chars, suffix ${after} chars` : `prompt ${infill.checked ? at : editor.value.length} chars`;
}

/** The models this key may use; the default pair is stable and canary when the gateway has both. */
async function loadModels() {
  const r = await api('/v1/models');
  if (!r.ok) {
    status.textContent = `models: ${errorText(r)}`;
    return;
  }
  const ids = (r.body?.data ?? []).map((m) => String(m.id));
  for (const p of panels) {
    const keep = p.model.value;
    p.model.replaceChildren(...ids.map((id) => new Option(id, id)));
    if (ids.includes(keep)) p.model.value = keep;
  }
  const pinned = ids.filter((id) => id.includes('@'));
  const pick = (name) => pinned.find((id) => id.endsWith(`@${name}`));
  const [a, b] = panels;
  if (a && !ids.includes(a.model.dataset.chosen ?? '')) a.model.value = pick('stable') ?? pinned[0] ?? ids[0] ?? '';
  if (b && !ids.includes(b.model.dataset.chosen ?? '')) b.model.value = pick('canary') ?? pinned.find((id) => id !== a?.model.value) ?? ids[0] ?? '';
  status.textContent = `${ids.length} models`;
}

async function complete() {
  const text = editor.value;
  const at = infill.checked ? editor.selectionStart : text.length;
  const prompt = text.slice(0, at);
  const suffix = infill.checked ? text.slice(at) : '';
  if (!prompt && !suffix) {
    status.textContent = 'write some code first';
    return;
  }
  const stops = stopSequences(/** @type {HTMLInputElement} */ ($('stop')).value);
  const body = {
    prompt,
    ...(suffix ? { suffix } : {}),
    max_tokens: numberOf('max-tokens'),
    temperature: numberOf('temperature'),
    top_p: numberOf('top-p'),
    ...(numberOf('seed') !== undefined ? { seed: numberOf('seed') } : {}),
    ...(stops.length ? { stop: stops } : {}),
  };
  status.textContent = suffix ? `infilling at ${at}…` : 'completing…';
  const button = /** @type {HTMLButtonElement} */ ($('complete'));
  button.disabled = true;
  try {
    await Promise.all(panels.map((p) => p.complete(body, at).catch((e) => (p.error.textContent = String(e)))));
    status.textContent = suffix ? `infilled at ${at}` : 'done';
  } finally {
    button.disabled = false;
  }
}

keyInput.value = sessionStorage.getItem(KEY_STORAGE) ?? '';
keyInput.addEventListener('change', () => {
  sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim());
  void loadModels();
});
for (const p of panels) p.model.addEventListener('change', () => (p.model.dataset.chosen = p.model.value));
$('load-models').addEventListener('click', () => void loadModels());
$('complete').addEventListener('click', () => void complete());
editor.addEventListener('keydown', (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
    e.preventDefault();
    void complete();
  }
});
for (const ev of ['keyup', 'click', 'select', 'input']) editor.addEventListener(ev, showCursor);
infill.addEventListener('change', showCursor);
showCursor();
if (keyInput.value) void loadModels();
