/**
 * The docs page (runs in the browser): renders /openapi.json, which @fastify/swagger generates from the routes'
 * schemas, as a list of operations with their parameters, bodies and responses, and curl examples for this server.
 * No Swagger UI bundle: a few kilobytes that follow the page's style and its Content-Security-Policy.
 */

interface Schema {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
  items?: Schema;
  properties?: Record<string, Schema>;
  format?: string;
  $ref?: string;
  examples?: unknown[];
}

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: { name: string; in: string; description?: string; schema?: Schema; required?: boolean }[];
  requestBody?: { content: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>;
  security?: unknown[];
}

interface Document {
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, Operation>>;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function typeOf(s: Schema | undefined): string {
  if (!s) return '';
  if (s.$ref) return s.$ref.split('/').pop() ?? 'object';
  if (s.enum) return s.enum.map(String).join(' | ');
  if (s.type === 'array') return `${typeOf(s.items)}[]`;
  if (s.format === 'binary') return 'file';
  return Array.isArray(s.type) ? s.type.join(' | ') : (s.type ?? 'any');
}

function table(head: string[], rows: string[][]): HTMLTableElement {
  const t = el('table');
  const tr = el('tr');
  for (const h of head) tr.append(el('th', h));
  t.append(el('thead'));
  t.tHead!.append(tr);
  const body = el('tbody');
  for (const r of rows) {
    const row = el('tr');
    for (const c of r) row.append(el('td', c));
    body.append(row);
  }
  t.append(body);
  return t;
}

function operation(path: string, method: string, op: Operation): HTMLElement {
  const box = el('section', undefined, 'op');
  box.id = `${method}-${path}`.replace(/[^\w-]+/g, '-');
  const h = el('h3');
  h.append(el('span', method.toUpperCase(), `method ${method}`), el('span', path, 'path'), el('span', op.summary ?? ''));
  if (op.security) h.append(el('span', '🔒 bearer token', 'lock'));
  box.append(h);
  if (op.description) box.append(el('p', op.description));
  const params = op.parameters ?? [];
  if (params.length > 0) {
    box.append(table(['parameter', 'type', 'what'], params.map((p) => [p.name, typeOf(p.schema), p.description ?? p.schema?.description ?? ''])));
  }
  if (op.requestBody) {
    const rows = Object.entries(op.requestBody.content).map(([type, media]) => [type, typeOf(media.schema), media.schema?.description ?? '']);
    box.append(table(['body', 'type', 'what'], rows));
  }
  const responses = Object.entries(op.responses ?? {});
  if (responses.length > 0) {
    box.append(table(['status', 'what'], responses.map(([status, r]) => [status, r.description ?? ''])));
    const ok = responses.find(([s]) => s === '200')?.[1].content?.['application/json']?.schema;
    if (ok) {
      const details = el('details');
      details.append(el('summary', '200 response schema'), el('pre', JSON.stringify(ok, null, 2)));
      box.append(details);
    }
  }
  return box;
}

async function start(): Promise<void> {
  const origin = window.location.origin;
  document.getElementById('examples')!.textContent = [
    `curl -F image=@photo.jpg ${origin}/v1/score`,
    `curl -F image=@a.jpg -F image=@b.png -F attributes=all -F maps=quality ${origin}/v1/score`,
    `curl -F image=@photo.jpg -F 'prompt=vivid=Vivid photo.|Dull photo.' "${origin}/v1/score?attributes=quality"`,
    `curl --data-binary @photo.jpg -H 'content-type: image/jpeg' "${origin}/v1/score?attributes=look"`,
    `curl -H 'content-type: application/json' -d '{"text": ["a photo of a cat"]}' ${origin}/v1/embed`,
  ].join('\n');
  const holder = document.getElementById('operations')!;
  try {
    const doc = (await (await fetch('/openapi.json')).json()) as Document;
    document.title = `${doc.info.title} ${doc.info.version} · HTTP API`;
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => operation(path, method, op)));
    holder.replaceChildren(...ops);
  } catch (e) {
    holder.textContent = `The API description could not be loaded: ${(e as Error).message}`;
  }
}

void start();
