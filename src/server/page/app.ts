/**
 * The `clip-iqa serve` web page (runs in the browser; compiled to dist/server/page/app.js and served with the
 * report's radar chart). Drop or pick photos: each gets a card with its quality score and a radar of its look and
 * feel; add antonym pairs of your own at any time (only the new pair is scored); sort cards and the side-by-side
 * table by any score; for ResNet models, paint a per-region heat map of one score over each photo.
 *
 * Every card asks the server for what it lacks (`ensure`), so changing the attribute set, adding a pair or turning
 * on a heat map costs one small request per image, not a rescoring of everything.
 */
import { type RadarAxis, radarSvg } from '../../report/radar.js';
import { ApiError, createClient, limiter } from './api.js';
import { type MapData, RAMP, drawHeatmap, range } from './heatmap.js';

interface Attribute {
  readonly name: string;
  readonly group: 'look' | 'feel' | 'extra';
  readonly positive: string;
  readonly negative: string;
  readonly high: string;
  readonly low: string;
}

interface PromptsInfo {
  readonly attributes: readonly Attribute[];
  readonly sets: Readonly<Record<string, readonly string[]>>;
  readonly default: string;
}

interface ModelsInfo {
  readonly model: { name: string; description: string; family: string; maps: boolean; plus: string | null };
  readonly limits: { maxUploadBytes: number; maxPixels: number; maxImagePixels?: number; maxFiles: number };
}

interface Pair {
  readonly name: string;
  readonly positive: string;
  readonly negative: string;
}

interface ImageResult {
  readonly file: string;
  readonly width?: number;
  readonly height?: number;
  readonly scores?: Record<string, number>;
  readonly maps?: MapData[];
  readonly error?: { code: string; message: string };
}

interface Item {
  readonly id: number;
  readonly file: File;
  readonly url: string;
  state: 'pending' | 'done' | 'failed';
  error?: string;
  width?: number;
  height?: number;
  readonly scores: Map<string, number>;
  readonly maps: Map<string, MapData>;
  /** A request for this image is under way; `again` asks for another check when it returns. */
  busy: boolean;
  again: boolean;
  readonly card: HTMLElement;
}

const PLUS = 'clipiqa+';
const HEADLINE = 'quality';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: { className?: string; text?: string } = {}, ...children: Node[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  node.append(...children);
  return node;
}

const fmt = (v: number | undefined): string => (v === undefined ? '–' : v.toFixed(3));
const megabytes = (n: number) => `${Math.round(n / 1024 / 1024)} MB`;
const megapixels = (n: number) => `${Math.round(n / 1e5) / 10} MP`;

// -- state ----------------------------------------------------------------------------------------------------------

const tokenDialog = $<HTMLDialogElement>('token-dialog');
const api = createClient(
  () =>
    new Promise((resolve) => {
      const input = $<HTMLInputElement>('token');
      input.value = '';
      tokenDialog.addEventListener('close', () => resolve(tokenDialog.returnValue === 'ok' && input.value ? input.value.trim() : undefined), { once: true });
      tokenDialog.showModal();
    }),
);
const slot = limiter(2);

const state = {
  attributes: [] as Attribute[],
  sets: {} as Record<string, readonly string[]>,
  model: undefined as ModelsInfo['model'] | undefined,
  set: 'paper',
  pairs: [] as Pair[],
  sortBy: HEADLINE,
  descending: true,
  heat: '',
  items: [] as Item[],
  nextId: 1,
};

/** Built-in attributes of the chosen set, in the paper's order. */
function setAttributes(): Attribute[] {
  const names = state.sets[state.set] ?? [];
  return state.attributes.filter((a) => names.includes(a.name));
}

/** Every score shown: the set's attributes, your pairs, and CLIP-IQA+ when the server has a context. */
function scoreNames(): string[] {
  return [...setAttributes().map((a) => a.name), ...state.pairs.map((p) => p.name), ...(state.model?.plus ? [PLUS] : [])];
}

const groupOf = (name: string): string => state.attributes.find((a) => a.name === name)?.group ?? (name === PLUS ? 'plus' : 'custom');

function showMessage(text: string, error = false): void {
  const m = $('message');
  m.textContent = text;
  m.classList.toggle('error', error);
  m.hidden = text === '';
}

// -- talking to the server ------------------------------------------------------------------------------------------

/** Asks the server for whatever scores and maps this image lacks; repeats while the wanted set changes under it. */
async function ensure(item: Item): Promise<void> {
  if (item.state === 'failed') return;
  if (item.busy) {
    item.again = true;
    return;
  }
  const attributes = setAttributes().filter((a) => !item.scores.has(a.name)).map((a) => a.name);
  const pairs = state.pairs.filter((p) => !item.scores.has(p.name));
  const plus = state.model?.plus ? !item.scores.has(PLUS) : false;
  const heat = state.heat && state.model?.maps && !item.maps.has(state.heat) ? state.heat : '';
  const heatPair = state.pairs.find((p) => p.name === heat);
  const heatAttribute = heat && !heatPair ? heat : '';
  if (attributes.length === 0 && pairs.length === 0 && !plus && !heat) {
    render(item);
    return;
  }
  // A map is computed with its score: make sure the heat map's attribute or pair is among those asked.
  const askAttributes = heatAttribute && !attributes.includes(heatAttribute) ? [...attributes, heatAttribute] : attributes;
  const askPairs = heatPair && !pairs.includes(heatPair) ? [...pairs, heatPair] : pairs;
  const form = new FormData();
  form.append('attributes', askAttributes.join(','));
  for (const p of askPairs) form.append('prompt', `${p.name}=${p.positive}|${p.negative}`);
  form.append('plus', String(plus));
  if (heat) form.append('maps', heat);
  form.append('image', item.file, item.file.name);

  item.busy = true;
  item.again = false;
  render(item);
  try {
    if (local.loading) await local.loading;
    const r = local.on
      ? await scoreHere(item.file, { attributes: askAttributes, pairs: askPairs, plus, heat })
      : (await slot(() => api.post<{ images: ImageResult[] }>('v1/score', form))).images[0]!;
    if (r.error) throw new ApiError(400, r.error.code, r.error.message);
    item.width = r.width;
    item.height = r.height;
    for (const [k, v] of Object.entries(r.scores ?? {})) item.scores.set(k, v);
    for (const m of r.maps ?? []) item.maps.set(m.name, m);
    item.state = 'done';
  } catch (e) {
    const error = e instanceof ApiError ? e : new ApiError(0, 'E_PAGE', String(e));
    // A bad pair is the pair's fault, not the image's: drop the pair, say why, and ask again without it (below,
    // once this request no longer counts as busy).
    const bad = error.code === 'E_PROMPT' || error.code === 'E_TOKENIZER' ? state.pairs.filter((p) => askPairs.includes(p)) : [];
    if (bad.length > 0) {
      state.pairs = state.pairs.filter((p) => !bad.includes(p));
      renderPairs();
      renderControls();
      showMessage(`${bad.map((p) => p.name).join(', ')}: ${error.message}`, true);
      item.again = true;
    } else if (item.scores.size === 0) {
      item.state = 'failed';
      item.error = error.message;
    } else {
      showMessage(`${item.file.name}: ${error.message}`, true);
    }
  } finally {
    item.busy = false;
  }
  render(item);
  renderAll();
  if (item.again) void ensure(item);
}

// -- scoring in this browser ----------------------------------------------------------------------------------------

/** GET v1/model/browser: the server's model as files for the browser build (server/model-files.ts). */
interface BrowserManifest {
  readonly available: boolean;
  readonly reason?: string;
  /** A static site (`clip-iqa site`): there is no server to score on. */
  readonly site?: boolean;
  readonly name?: string;
  readonly model?: string | Record<string, string>;
  readonly vocab?: string;
  readonly plus?: string | null;
  readonly plusPositional?: string;
  readonly positional?: string;
  readonly noisiness?: string;
  readonly architecture?: unknown;
}

/** What the page uses of the browser build's ClipIqa (clip-iqa/browser), loaded only when the switch is turned on. */
interface BrowserModel {
  readonly backend: string;
  readonly threads: number;
  score(
    input: Blob,
    options: { attributes: string[]; prompts: string[]; plus: boolean; maps: string[] },
  ): Promise<{ width: number; height: number; scores: Record<string, number>; maps?: { name: string; width: number; height: number; scores: Float32Array }[] }>;
}
interface BrowserApi {
  ClipIqa: { load(options: Record<string, unknown>): Promise<BrowserModel> };
}

const local = {
  manifest: undefined as BrowserManifest | undefined,
  on: false,
  model: undefined as BrowserModel | undefined,
  /** The model is being loaded into this browser: photos dropped meanwhile wait for it rather than go to the server. */
  loading: undefined as Promise<void> | undefined,
};

/** Scores one photo with the model in this browser: the same request the server would answer, and its answer's shape. */
async function scoreHere(file: File, ask: { attributes: string[]; pairs: Pair[]; plus: boolean; heat: string }): Promise<ImageResult> {
  const model = local.model!;
  try {
    const r = await model.score(file, {
      attributes: ask.attributes,
      prompts: ask.pairs.map((p) => `${p.name}=${p.positive}|${p.negative}`),
      plus: ask.plus,
      maps: ask.heat ? [ask.heat] : [],
    });
    return { file: file.name, width: r.width, height: r.height, scores: r.scores, maps: r.maps?.map((m) => ({ name: m.name, width: m.width, height: m.height, scores: Array.from(m.scores) })) };
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'E_BROWSER';
    return { file: file.name, error: { code, message: (e as Error).message } };
  }
}

const percent = (loaded: number, total: number | undefined) => (total ? ` ${Math.round((100 * loaded) / total)}%` : '');

/** Loads the server's model into this browser (downloaded once, then from the browser's cache) and switches scoring to it. */
async function useThisBrowser(on: boolean): Promise<void> {
  const box = $<HTMLInputElement>('local');
  if (!on) {
    local.on = false;
    renderLimits();
    return;
  }
  const manifest = local.manifest!;
  try {
    if (!local.model) {
      box.disabled = true;
      const status = $('local-status');
      status.hidden = false;
      status.textContent = 'loading the model into this browser…';
      const api = (await import(new URL('assets/browser/clip-iqa.js', document.baseURI).href)) as BrowserApi;
      const token = sessionStorage.getItem('clip-iqa-token');
      local.model = await api.ClipIqa.load({
        model: manifest.model,
        vocab: manifest.vocab,
        ...(manifest.plus ? { plus: manifest.plus, ...(manifest.plusPositional ? { plusPositional: manifest.plusPositional } : {}) } : {}),
        positional: manifest.positional,
        noisiness: manifest.noisiness,
        ...(manifest.architecture ? { architecture: manifest.architecture } : {}),
        name: manifest.name,
        ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
        onProgress: (p: { kind: string; loaded: number; total?: number; cached: boolean }) => {
          status.textContent = `loading the ${p.kind}${p.cached ? ' from this browser’s cache' : ''}…${percent(p.loaded, p.total)}`;
        },
      });
      status.textContent = `scoring in this browser (${local.model.backend}${local.model.backend === 'wasm' ? `, ${local.model.threads} thread${local.model.threads > 1 ? 's' : ''}` : ''})`;
    }
    local.on = true;
  } catch (e) {
    box.checked = false;
    $('local-status').hidden = true;
    showMessage(`Scoring in this browser is not possible: ${(e as Error).message}`, true);
  } finally {
    box.disabled = manifest.site === true;
  }
  renderLimits();
}

// -- rendering ------------------------------------------------------------------------------------------------------

function scoreBlock(name: string, label: string, value: number | undefined, small = false): HTMLElement {
  const v = el('span', { className: 'value', text: fmt(value) });
  v.dataset.score = name;
  if (value !== undefined) v.dataset.value = String(value);
  return el('span', { className: small ? 'score small' : 'score' }, v, el('span', { className: 'label', text: label }));
}

/** Where an `object-fit: contain` image is drawn inside its box. */
function contentRect(img: HTMLImageElement): { left: number; top: number; width: number; height: number } {
  const bw = img.clientWidth;
  const bh = img.clientHeight;
  const scale = Math.min(bw / (img.naturalWidth || 1), bh / (img.naturalHeight || 1));
  const width = img.naturalWidth * scale;
  const height = img.naturalHeight * scale;
  return { left: (bw - width) / 2, top: (bh - height) / 2, width, height };
}

function paintHeat(item: Item): void {
  const figure = item.card.querySelector('figure')!;
  const img = figure.querySelector('img')!;
  let canvas = figure.querySelector('canvas');
  const map = state.heat ? item.maps.get(state.heat) : undefined;
  if (!map || !img.complete || img.naturalWidth === 0) {
    canvas?.remove();
    return;
  }
  canvas ??= figure.appendChild(el('canvas'));
  canvas.setAttribute('aria-hidden', 'true');
  const rect = contentRect(img);
  canvas.style.left = `${rect.left}px`;
  canvas.style.top = `${rect.top}px`;
  drawHeatmap(canvas, map, rect.width, rect.height);
}

function render(item: Item): void {
  const { card } = item;
  card.classList.toggle('pending', item.state === 'pending' || item.busy);
  card.classList.toggle('failed', item.state === 'failed');
  card.dataset.state = item.state;
  const body = card.querySelector('.body')!;
  const name = el('div', { className: 'name', text: item.file.name });
  name.title = item.file.name;
  const parts: Node[] = [name];

  if (item.state === 'failed') {
    parts.push(el('p', { className: 'error', text: item.error ?? 'failed' }));
    body.replaceChildren(...parts);
    return;
  }
  const headline = el('div', { className: 'headline' });
  headline.append(scoreBlock(HEADLINE, 'quality', item.scores.get(HEADLINE)));
  if (state.model?.plus) headline.append(scoreBlock(PLUS, 'CLIP-IQA+', item.scores.get(PLUS), true));
  if (item.busy) headline.append(el('span', { className: 'spinner' }));
  if (item.width) headline.append(el('span', { className: 'size', text: `${item.width}×${item.height}` }));
  parts.push(headline);

  const axes: RadarAxis[] = setAttributes().map((a) => ({
    name: a.name,
    value: item.scores.get(a.name) ?? NaN,
    group: a.group,
    hint: `1 = ${a.high}, 0 = ${a.low}`,
  }));
  if (axes.length >= 3 && axes.some((a) => Number.isFinite(a.value))) {
    const holder = el('div');
    holder.innerHTML = radarSvg(axes, { title: `Look and feel of ${item.file.name}` });
    parts.push(holder);
  }
  const own = state.pairs.filter((p) => item.scores.has(p.name));
  if (own.length > 0) {
    const grid = el('div', { className: 'extra' });
    for (const p of own) {
      const v = item.scores.get(p.name)!;
      const fill = el('i');
      fill.style.width = `${(v * 100).toFixed(1)}%`;
      const value = el('span', { text: fmt(v) });
      value.dataset.score = p.name;
      value.dataset.value = String(v);
      const label = el('span', { text: p.name });
      label.title = `${p.positive} vs ${p.negative}`;
      grid.append(label, el('span', { className: 'bar' }, fill), value);
    }
    parts.push(grid);
  }
  const map = state.heat ? item.maps.get(state.heat) : undefined;
  if (map) {
    const { min, max } = range(map);
    const ramp = el('span', { className: 'ramp' });
    ramp.style.background = RAMP;
    parts.push(el('div', { className: 'legend' }, el('span', { text: `${state.heat} ${min.toFixed(3)}` }), ramp, el('span', { text: max.toFixed(3) })));
  }
  body.replaceChildren(...parts);
  paintHeat(item);
}

const valueOf = (item: Item): number => (item.state === 'done' ? (item.scores.get(state.sortBy) ?? -Infinity) : -Infinity);

/** Items in the chosen order; images still scoring or failed go last, in the order they were added. */
function sorted(): Item[] {
  const sign = state.descending ? -1 : 1;
  return [...state.items].sort((a, b) => {
    const va = valueOf(a);
    const vb = valueOf(b);
    if (va === -Infinity || vb === -Infinity) return va === vb ? a.id - b.id : va === -Infinity ? 1 : -1;
    return sign * (va - vb) || a.id - b.id;
  });
}

function renderTable(): void {
  const done = sorted().filter((i) => i.state === 'done');
  $('compare').hidden = done.length < 2;
  if (done.length < 2) return;
  const names = scoreNames();
  const head = el('tr');
  const first = el('th', { text: 'image' });
  head.append(first);
  for (const n of names) {
    const th = el('th', { className: groupOf(n), text: n });
    th.scope = 'col';
    if (n === state.sortBy) th.setAttribute('aria-sort', state.descending ? 'descending' : 'ascending');
    th.addEventListener('click', () => {
      if (state.sortBy === n) state.descending = !state.descending;
      else state.sortBy = n;
      renderControls();
      renderAll();
    });
    head.append(th);
  }
  const extremes = new Map(
    names.map((n) => {
      const vs = done.map((i) => i.scores.get(n)).filter((v): v is number => v !== undefined);
      return [n, { max: Math.max(...vs), min: Math.min(...vs) }] as const;
    }),
  );
  const rows = done.map((item) => {
    const tr = el('tr');
    const thumb = el('img', { className: 'thumb' });
    thumb.src = item.url;
    thumb.alt = '';
    const cell = el('td', {}, thumb, el('span', { className: 'file', text: item.file.name }));
    tr.append(cell);
    for (const n of names) {
      const v = item.scores.get(n);
      const td = el('td', { text: fmt(v) });
      const e = extremes.get(n)!;
      if (v !== undefined && done.length > 2 && v === e.max) td.className = 'high';
      else if (v !== undefined && done.length > 2 && v === e.min) td.className = 'low';
      tr.append(td);
    }
    return tr;
  });
  $('table').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
}

function renderAll(): void {
  const cards = $('cards');
  for (const item of sorted()) cards.append(item.card);
  renderTable();
  $('empty').hidden = state.items.length > 0;
}

function renderControls(): void {
  const names = scoreNames();
  if (!names.includes(state.sortBy)) state.sortBy = names[0] ?? HEADLINE;
  const sort = $<HTMLSelectElement>('sort');
  sort.replaceChildren(...names.map((n) => new Option(n, n, false, n === state.sortBy)));
  const order = $<HTMLButtonElement>('order');
  order.textContent = state.descending ? '↓' : '↑';
  order.title = order.ariaLabel = state.descending ? 'Highest first' : 'Lowest first';
  const heat = $<HTMLSelectElement>('heat');
  $('heat-label').hidden = !state.model?.maps;
  const mappable = names.filter((n) => n !== PLUS);
  if (!mappable.includes(state.heat)) state.heat = '';
  heat.replaceChildren(new Option('off', '', false, state.heat === ''), ...mappable.map((n) => new Option(n, n, false, n === state.heat)));
}

function renderPairs(): void {
  const list = $('pairs');
  list.replaceChildren(
    ...state.pairs.map((p) => {
      const remove = el('button', { text: '×' });
      remove.type = 'button';
      remove.ariaLabel = `Remove ${p.name}`;
      remove.addEventListener('click', () => {
        state.pairs = state.pairs.filter((x) => x !== p);
        renderPairs();
        renderControls();
        state.items.forEach(render);
        renderAll();
      });
      const li = el('li', {}, el('b', { text: p.name }), el('span', { text: `${p.positive} / ${p.negative}` }), remove);
      return li;
    }),
  );
}

// -- input ----------------------------------------------------------------------------------------------------------

function addFiles(files: Iterable<File>): void {
  for (const file of files) {
    const url = URL.createObjectURL(file);
    const img = el('img');
    img.src = url;
    img.alt = file.name;
    const card = el('article', { className: 'card' }, el('figure', {}, img), el('div', { className: 'body' }));
    card.dataset.file = file.name;
    const item: Item = { id: state.nextId++, file, url, state: 'pending', scores: new Map(), maps: new Map(), busy: false, again: false, card };
    img.addEventListener('load', () => paintHeat(item));
    state.items.push(item);
    render(item);
    void ensure(item);
  }
  renderAll();
}

function refreshAll(): void {
  renderControls();
  for (const item of state.items) void ensure(item);
  renderAll();
}

function wire(): void {
  const input = $<HTMLInputElement>('files');
  input.addEventListener('change', () => {
    if (input.files) addFiles(Array.from(input.files));
    input.value = '';
  });
  const drop = $('drop');
  // Files may be dropped anywhere on the page; the drop zone lights up while they are dragged.
  document.addEventListener('dragover', (e) => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    drop.classList.add('over');
  });
  document.addEventListener('dragleave', (e) => {
    if (e.relatedTarget === null) drop.classList.remove('over');
  });
  document.addEventListener('drop', (e) => {
    drop.classList.remove('over');
    if (!e.dataTransfer?.files.length) return;
    e.preventDefault();
    addFiles(Array.from(e.dataTransfer.files).filter((f) => f.type.startsWith('image/') || f.type === ''));
  });
  document.addEventListener('paste', (e) => {
    const files = Array.from(e.clipboardData?.files ?? []).filter((f) => f.type.startsWith('image/'));
    if (files.length > 0) addFiles(files);
  });

  $<HTMLSelectElement>('set').addEventListener('change', (e) => {
    state.set = (e.target as HTMLSelectElement).value;
    refreshAll();
    state.items.forEach(render);
  });
  $<HTMLSelectElement>('sort').addEventListener('change', (e) => {
    state.sortBy = (e.target as HTMLSelectElement).value;
    renderControls();
    renderAll();
  });
  $('order').addEventListener('click', () => {
    state.descending = !state.descending;
    renderControls();
    renderAll();
  });
  $<HTMLSelectElement>('heat').addEventListener('change', (e) => {
    state.heat = (e.target as HTMLSelectElement).value;
    state.items.forEach(render);
    refreshAll();
  });
  $('clear').addEventListener('click', () => {
    for (const item of state.items) URL.revokeObjectURL(item.url);
    state.items = [];
    $('cards').replaceChildren();
    renderAll();
    showMessage('');
  });
  $<HTMLFormElement>('pair').addEventListener('submit', (e) => {
    e.preventDefault();
    const positive = $<HTMLInputElement>('pair-positive').value.trim();
    const negative = $<HTMLInputElement>('pair-negative').value.trim();
    const name = $<HTMLInputElement>('pair-name').value.trim() || positive.replace(/\s*photo\.?$/i, '').toLowerCase() || positive;
    if (!positive || !negative) return;
    const taken = [...scoreNames(), ...state.attributes.map((a) => a.name), 'ensemble'];
    if (taken.includes(name) || /[=|,]/.test(name)) {
      showMessage(`"${name}" is already a score name or has = | , in it; give the pair another name`, true);
      return;
    }
    state.pairs.push({ name, positive, negative });
    (e.target as HTMLFormElement).reset();
    showMessage('');
    renderPairs();
    refreshAll();
  });
  // Heat maps follow the photo's displayed size.
  new ResizeObserver(() => state.items.forEach(paintHeat)).observe($('cards'));
}

let limits: ModelsInfo['limits'] | undefined;

function renderLimits(): void {
  if (!limits) return;
  $('limits').textContent = local.on
    ? 'JPEG, PNG, WebP, AVIF or GIF · scored in this browser, nothing is uploaded'
    : `JPEG, PNG, WebP, AVIF, TIFF or GIF up to ${megabytes(limits.maxUploadBytes)} and ${megapixels(limits.maxImagePixels ?? limits.maxPixels)} · scored on the server, not kept`;
}

/** Shows the switch when the server's model can be scored here (a file it can serve, module workers, WASM). */
async function offerThisBrowser(): Promise<void> {
  if (typeof WebAssembly !== 'object' || typeof Worker !== 'function') return;
  try {
    local.manifest = await api.getJson<BrowserManifest>('v1/model/browser');
  } catch {
    return; // an older server, or the route is not there: server scoring only
  }
  if (!local.manifest.available) return;
  const box = $<HTMLInputElement>('local');
  $('local-label').hidden = false;
  const use = (on: boolean) => {
    local.loading = useThisBrowser(on).finally(() => (local.loading = undefined));
    return local.loading;
  };
  box.addEventListener('change', () => void use(box.checked));
  if (local.manifest.site) {
    box.checked = true;
    await use(true);
  }
}

async function start(): Promise<void> {
  wire();
  try {
    const [models, prompts] = await Promise.all([api.getJson<ModelsInfo>('v1/models'), api.getJson<PromptsInfo>('v1/prompts')]);
    state.model = models.model;
    state.attributes = [...prompts.attributes];
    state.sets = { ...prompts.sets };
    state.set = prompts.default;
    const m = models.model;
    $('model').textContent = `${m.name} · ${m.description}${m.plus ? ` · CLIP-IQA+ (${m.plus})` : ''}`;
    limits = models.limits;
    renderLimits();
    $<HTMLSelectElement>('set').value = state.set;
    await offerThisBrowser();
    document.body.dataset.ready = 'true';
    renderControls();
    renderAll();
  } catch (e) {
    $('model').textContent = `The server cannot be used: ${(e as Error).message}`;
  }
}

void start();
